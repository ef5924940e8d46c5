//! A real gRPC round trip over a Unix socket: bind_uds, serve, connect_uds, call.

use std::os::unix::fs::PermissionsExt;

use bpfman_api::client::{bind_uds, connect_uds, uds_incoming};
use bpfman_api::ext;
use bpfman_api::ext::bpfman_ext_client::BpfmanExtClient;
use bpfman_api::ext::bpfman_ext_server::{BpfmanExt, BpfmanExtServer};
use tonic::{Request, Response, Status};

/// Echoes its inputs as JSON so the test can see they crossed the wire intact.
struct Echo;

#[tonic::async_trait]
impl BpfmanExt for Echo {
    async fn list_programs(
        &self,
        r: Request<ext::ListProgramsRequest>,
    ) -> Result<Response<ext::ListProgramsResponse>, Status> {
        let r = r.into_inner();
        let json = serde_json::json!({
            "program_type": r.program_type,
            "selector": r.selector,
            "all": r.all,
        })
        .to_string();
        Ok(Response::new(ext::ListProgramsResponse { json }))
    }
    async fn get_program(
        &self,
        r: Request<ext::GetProgramRequest>,
    ) -> Result<Response<ext::GetProgramResponse>, Status> {
        let id = r.into_inner().id;
        if id == 0 {
            return Err(Status::not_found("program 0 does not exist"));
        }
        Ok(Response::new(ext::GetProgramResponse {
            json: serde_json::json!({ "id": id }).to_string(),
        }))
    }
    async fn list_links(
        &self,
        _: Request<ext::ListLinksRequest>,
    ) -> Result<Response<ext::ListLinksResponse>, Status> {
        Err(Status::unimplemented("not in this test"))
    }
    async fn get_link(
        &self,
        _: Request<ext::GetLinkRequest>,
    ) -> Result<Response<ext::GetLinkResponse>, Status> {
        Err(Status::unimplemented("not in this test"))
    }
    async fn gc(&self, _: Request<ext::GcRequest>) -> Result<Response<ext::GcResponse>, Status> {
        Err(Status::unimplemented("not in this test"))
    }
    async fn program_stats(
        &self,
        _: Request<ext::ProgramStatsRequest>,
    ) -> Result<Response<ext::ProgramStatsResponse>, Status> {
        Err(Status::unimplemented("not in this test"))
    }
    async fn load(
        &self,
        _: Request<ext::LoadRequest>,
    ) -> Result<Response<ext::LoadResponse>, Status> {
        Err(Status::unimplemented("not in this test"))
    }
    async fn attach(
        &self,
        r: Request<ext::AttachRequest>,
    ) -> Result<Response<ext::AttachResponse>, Status> {
        let r = r.into_inner();
        Ok(Response::new(ext::AttachResponse {
            json: format!("{}|{}|{:?}", r.id, r.spec_json, r.metadata),
        }))
    }
}

#[tokio::test]
async fn serve_and_call_over_unix_socket() {
    let tmp = tempfile::tempdir().unwrap();
    let sock = tmp.path().join("run/bpfman-sock/bpfman.sock");

    let listener = bind_uds(&sock).unwrap();
    let mode = std::fs::metadata(&sock).unwrap().permissions().mode() & 0o7777;
    assert_eq!(mode, 0o660, "socket mode");
    let dir_mode = std::fs::metadata(sock.parent().unwrap())
        .unwrap()
        .permissions()
        .mode()
        & 0o7777;
    assert_eq!(dir_mode & !0o022, 0o755 & !0o022, "socket dir mode");

    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(BpfmanExtServer::new(Echo))
            .serve_with_incoming_shutdown(uds_incoming(listener), async {
                let _ = stop_rx.await;
            }),
    );

    // A second daemon must not steal a live socket.
    let err = bind_uds(&sock).unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::AddrInUse, "{err}");

    let channel = connect_uds(&sock).await.unwrap();
    let mut client = BpfmanExtClient::new(channel);

    let got = client
        .get_program(ext::GetProgramRequest { id: 7 })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(got.json, r#"{"id":7}"#);

    let got = client
        .list_programs(ext::ListProgramsRequest {
            program_type: Some("xdp".into()),
            selector: [("bpfman.io/application".to_string(), "stats".to_string())].into(),
            all: true,
        })
        .await
        .unwrap()
        .into_inner();
    let v: serde_json::Value = serde_json::from_str(&got.json).unwrap();
    assert_eq!(v["program_type"], "xdp");
    assert_eq!(v["selector"]["bpfman.io/application"], "stats");
    assert_eq!(v["all"], true);

    let got = client
        .attach(ext::AttachRequest {
            id: 3,
            spec_json: r#"{"type":"fentry"}"#.into(),
            metadata: [("k".to_string(), "v".to_string())].into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(got.json, r#"3|{"type":"fentry"}|{"k": "v"}"#);

    // Status codes and messages cross the wire unchanged.
    let status = client
        .get_program(ext::GetProgramRequest { id: 0 })
        .await
        .unwrap_err();
    assert_eq!(status.code(), tonic::Code::NotFound);
    assert_eq!(status.message(), "program 0 does not exist");

    drop(client);
    stop_tx.send(()).unwrap();
    server.await.unwrap().unwrap();

    // The daemon is gone but its socket file is left: a restart replaces it.
    assert!(sock.exists());
    let listener = bind_uds(&sock).unwrap();
    drop(listener);
}

#[tokio::test]
async fn connect_without_daemon_names_the_socket() {
    let tmp = tempfile::tempdir().unwrap();
    let sock = tmp.path().join("nothing.sock");
    let err = connect_uds(&sock).await.unwrap_err();
    let msg = err.to_string();
    assert!(msg.contains(&sock.display().to_string()), "{msg}");
    assert!(msg.contains("No such file"), "{msg}");
}

#[tokio::test]
async fn bind_refuses_to_replace_a_regular_file() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("bpfman.sock");
    std::fs::write(&path, b"precious").unwrap();
    let err = bind_uds(&path).unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::AlreadyExists);
    assert_eq!(std::fs::read(&path).unwrap(), b"precious");
}
