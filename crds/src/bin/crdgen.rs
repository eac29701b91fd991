//! Prints the Blockchain CRD as YAML (see `kubechain_crds::REGENERATE_COMMAND`).

fn main() {
    print!("{}", kubechain_crds::crd_yaml());
}
