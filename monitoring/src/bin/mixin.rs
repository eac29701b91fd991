//! Writes the mixin's files (dashboards and the Prometheus rule file) into the repository given
//! as the only argument (default: the current directory).

use std::path::PathBuf;

fn main() -> std::io::Result<()> {
    let root = std::env::args().nth(1).map_or_else(|| PathBuf::from("."), PathBuf::from);
    for (path, contents) in kubechain_monitoring::outputs() {
        let path = root.join(path);
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        std::fs::write(&path, contents)?;
        println!("wrote {}", path.display());
    }
    Ok(())
}
