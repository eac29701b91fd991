//! Prints the node API's OpenAPI document, generated from the kubechain-api types
//! (`node/api/openapi.json` is this output).

fn main() {
    print!("{}", kubechain_api::openapi_json());
}
