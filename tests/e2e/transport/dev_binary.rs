//! `serve --dev` with TLS and an admin listener, as a process: dev.env names
//! both addresses and the admin CLI reaches AdminService where it lives.

use std::process::Stdio;

use super::Ca;
use crate::common::process::{CityProcess, command};

#[tokio::test]
async fn serve_dev_with_tls_and_an_admin_listener_works_with_the_admin_cli() {
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::new("dev ca");
    let server = ca.server(1);
    let path = |name: &str| dir.path().join(name).to_str().unwrap().to_string();
    std::fs::write(path("tls.crt"), &server.cert_pem).unwrap();
    std::fs::write(path("tls.key"), &server.key_pem).unwrap();
    std::fs::write(path("ca.pem"), ca.pem()).unwrap();
    let data = path("data");
    let args = [
        "serve",
        "--dev",
        "--listen",
        "127.0.0.1:0",
        "--admin-listen",
        "127.0.0.1:0",
        "--data-dir",
        &data,
        "--tls-cert",
        &path("tls.crt"),
        "--tls-key",
        &path("tls.key"),
    ];
    let mut city = CityProcess::spawn(&args, &[], dir.path(), "city");
    let env = city.wait_dev_env(std::path::Path::new(&data)).await;
    let admin_addr = env
        .lines
        .get("DOWNCITY_ADMIN_ADDR")
        .expect("DOWNCITY_ADMIN_ADDR")
        .clone();
    assert!(env.addr.starts_with("https://127.0.0.1:"), "{}", env.addr);
    assert!(admin_addr.starts_with("https://127.0.0.1:") && admin_addr != env.addr);

    // The CLI as a script runs it after sourcing dev.env: the admin address wins.
    let cli = |with_admin_addr: bool| {
        let mut cli = command(&["admin", "studios", "list", "--json"]);
        cli.env("DOWNCITY_ADDR", &env.addr)
            .env("DOWNCITY_ADMIN_KEY", &env.admin_key)
            .env("DOWNCITY_CA_CERT", path("ca.pem"))
            .stdin(Stdio::null());
        if with_admin_addr {
            cli.env("DOWNCITY_ADMIN_ADDR", &admin_addr);
        }
        cli.output().unwrap()
    };
    let listed = cli(true);
    let stdout = String::from_utf8_lossy(&listed.stdout);
    assert!(
        listed.status.success(),
        "{}",
        String::from_utf8_lossy(&listed.stderr)
    );
    assert!(stdout.contains("\"demo\""), "{stdout}");
    let on_main = cli(false);
    let stderr = String::from_utf8_lossy(&on_main.stderr);
    assert!(
        !on_main.status.success() && stderr.contains("UNIMPLEMENTED"),
        "{stderr}"
    );
    city.terminate_cleanly().await;
}
