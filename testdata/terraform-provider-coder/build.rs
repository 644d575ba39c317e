//! Compiles Terraform's plugin protocol v6 and go-plugin's controller service
//! from `proto/` with protox, so no `protoc` binary is needed.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("cargo:rerun-if-changed=proto");
    let fds = protox::compile(["tfplugin6.5.proto", "plugin.proto"], ["proto"])?;
    tonic_prost_build::configure().build_client(false).compile_fds(fds)?;
    Ok(())
}
