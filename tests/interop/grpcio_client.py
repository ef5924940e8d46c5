#!/usr/bin/env python3
"""A client nobody here wrote: Python grpcio (gRPC C-core) against bpfman.

Stubs are generated at run time from the repository's protos with
grpc_tools.protoc; channels use grpcio's defaults (`unix:PATH`, no authority
override), which is what a new user writes.

    grpcio_client.py bpfman --socket S --object OBJ --program NAME
    grpcio_client.py csi --socket S --target DIR --app NAME

Each check prints `ok NAME` or `FAIL NAME: why`; the last line is
`interop: N passed, M failed`, and the exit code is 1 if any failed.
Facts the caller checks on the kernel side (ids) go to stdout as
`fact KEY=VALUE`.
"""

import argparse
import importlib
import os
import sys
import tempfile

import grpc
from grpc_tools import protoc

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
PROTO_DIRS = {
    "bpfman": os.path.join(REPO, "crates/bpfman-api/proto"),
    "csi": os.path.join(REPO, "crates/bpfman-csi/proto"),
}
HEALTH_PROTO = """
syntax = "proto3";
package grpc.health.v1;
message HealthCheckRequest { string service = 1; }
message HealthCheckResponse {
  enum ServingStatus { UNKNOWN = 0; SERVING = 1; NOT_SERVING = 2; SERVICE_UNKNOWN = 3; }
  ServingStatus status = 1;
}
service Health { rpc Check(HealthCheckRequest) returns (HealthCheckResponse); }
"""

passed = 0
failed = 0


def check(name, cond, why=""):
    global passed, failed
    if cond:
        passed += 1
        print(f"ok {name}", flush=True)
    else:
        failed += 1
        print(f"FAIL {name}: {why}", flush=True)


def expect_code(name, fn, code):
    """Calls fn, which must fail with grpc status `code` and a message."""
    try:
        fn()
    except grpc.RpcError as e:
        check(name, e.code() == code and e.details(),
              f"got {e.code()} {e.details()!r}, want {code}")
        return
    check(name, False, f"succeeded, want {code}")


def stubs(out, which):
    """Generates Python modules for the named protos into `out`."""
    src = PROTO_DIRS[which]
    files = {"bpfman": ["bpfman.proto"], "csi": ["csi.proto"]}[which]
    health = os.path.join(out, "health.proto")
    with open(health, "w") as f:
        f.write(HEALTH_PROTO)
    wkt = os.path.join(os.path.dirname(protoc.__file__), "_proto")
    for proto_dir, name in [(src, n) for n in files] + [(out, "health.proto")]:
        rc = protoc.main([
            "grpc_tools.protoc", f"-I{proto_dir}", f"-I{wkt}",
            f"--python_out={out}", f"--grpc_python_out={out}",
            os.path.join(proto_dir, name),
        ])
        if rc != 0:
            sys.exit(f"protoc failed on {name} ({rc})")
    sys.path.insert(0, out)


def channel(socket):
    # grpcio's defaults: C-core sends the socket path as :authority.
    return grpc.insecure_channel(f"unix:{socket}")


def health(ch):
    hp = importlib.import_module("health_pb2")
    hg = importlib.import_module("health_pb2_grpc")
    r = hg.HealthStub(ch).Check(hp.HealthCheckRequest(), timeout=30)
    check("health Check is SERVING", r.status == hp.HealthCheckResponse.SERVING, str(r))


def run_bpfman(args):
    pb = importlib.import_module("bpfman_pb2")
    pg = importlib.import_module("bpfman_pb2_grpc")
    ch = channel(args.socket)
    health(ch)
    stub = pg.BpfmanStub(ch)

    loaded = stub.Load(pb.LoadRequest(
        bytecode=pb.BytecodeLocation(file=args.object),
        info=[pb.LoadInfo(name=args.program, program_type=pb.TRACEPOINT)],
        metadata={"bpfman.io/application": "grpcio"},
    ), timeout=60)
    check("Load returns one program", len(loaded.programs) == 1, str(loaded))
    pid = loaded.programs[0].kernel_info.id
    check("Load names the program", loaded.programs[0].info.name == args.program,
          loaded.programs[0].info.name)
    print(f"fact program_id={pid}", flush=True)

    att = stub.Attach(pb.AttachRequest(id=pid, attach=pb.AttachInfo(
        tracepoint_attach_info=pb.TracepointAttachInfo(tracepoint="sched/sched_switch"))),
        timeout=60)
    check("Attach returns a link id", att.link_id > 0, str(att))
    print(f"fact link_id={att.link_id}", flush=True)

    listed = stub.List(pb.ListRequest(match_metadata={"bpfman.io/application": "grpcio"}),
                       timeout=60)
    ids = [r.kernel_info.id for r in listed.results]
    check("List by metadata finds it", ids == [pid], str(ids))

    got = stub.Get(pb.GetRequest(id=pid), timeout=60)
    check("Get shows the link and metadata",
          list(got.info.links) == [att.link_id]
          and got.info.metadata.get("bpfman.io/application") == "grpcio",
          str(got.info))

    expect_code("Get of an unknown id is NOT_FOUND",
                lambda: stub.Get(pb.GetRequest(id=0xfffffff0), timeout=60),
                grpc.StatusCode.NOT_FOUND)
    expect_code("Load of a missing file is NOT_FOUND",
                lambda: stub.Load(pb.LoadRequest(
                    bytecode=pb.BytecodeLocation(file="/nonexistent/x.o"),
                    info=[pb.LoadInfo(name="x", program_type=pb.TRACEPOINT)]), timeout=60),
                grpc.StatusCode.NOT_FOUND)
    expect_code("Attach without attach info is INVALID_ARGUMENT",
                lambda: stub.Attach(pb.AttachRequest(id=pid), timeout=60),
                grpc.StatusCode.INVALID_ARGUMENT)
    expect_code("Attach to an unknown program is NOT_FOUND",
                lambda: stub.Attach(pb.AttachRequest(id=0xfffffff0, attach=pb.AttachInfo(
                    tracepoint_attach_info=pb.TracepointAttachInfo(
                        tracepoint="sched/sched_switch"))), timeout=60),
                grpc.StatusCode.NOT_FOUND)

    stub.Detach(pb.DetachRequest(link_id=att.link_id), timeout=60)
    got = stub.Get(pb.GetRequest(id=pid), timeout=60)
    check("Detach removes the link", list(got.info.links) == [], str(got.info.links))
    expect_code("Detach of a gone link is NOT_FOUND",
                lambda: stub.Detach(pb.DetachRequest(link_id=att.link_id), timeout=60),
                grpc.StatusCode.NOT_FOUND)

    stub.Unload(pb.UnloadRequest(id=pid), timeout=60)
    expect_code("Get after Unload is NOT_FOUND",
                lambda: stub.Get(pb.GetRequest(id=pid), timeout=60),
                grpc.StatusCode.NOT_FOUND)
    expect_code("Unload twice is NOT_FOUND",
                lambda: stub.Unload(pb.UnloadRequest(id=pid), timeout=60),
                grpc.StatusCode.NOT_FOUND)


def run_csi(args):
    pb = importlib.import_module("csi_pb2")
    pg = importlib.import_module("csi_pb2_grpc")
    ch = channel(args.socket)
    info = pg.IdentityStub(ch).GetPluginInfo(pb.GetPluginInfoRequest(), timeout=30)
    check("GetPluginInfo names the driver", info.name == args.driver, info.name)
    node = pg.NodeStub(ch)
    caps = pb.VolumeCapability(
        mount=pb.VolumeCapability.MountVolume(),
        access_mode=pb.VolumeCapability.AccessMode(
            mode=pb.VolumeCapability.AccessMode.SINGLE_NODE_WRITER))
    ctx = {
        "csi.storage.k8s.io/pod.name": "reader",
        "csi.storage.k8s.io/pod.namespace": "default",
        "csi.storage.k8s.io/pod.uid": args.pod_uid,
        "csi.storage.k8s.io/ephemeral": "true",
        "bpfman.io/application": args.app,
    }
    node.NodePublishVolume(pb.NodePublishVolumeRequest(
        volume_id="csi-grpcio-vol", target_path=args.target,
        volume_capability=caps, volume_context=ctx), timeout=60)
    maps = sorted(os.listdir(args.target))
    check("NodePublishVolume shows the maps", args.map in maps, str(maps))
    expect_code("NodePublishVolume without a target is INVALID_ARGUMENT",
                lambda: node.NodePublishVolume(pb.NodePublishVolumeRequest(
                    volume_id="csi-grpcio-vol2", volume_capability=caps,
                    volume_context=ctx), timeout=60),
                grpc.StatusCode.INVALID_ARGUMENT)
    node.NodeUnpublishVolume(pb.NodeUnpublishVolumeRequest(
        volume_id="csi-grpcio-vol", target_path=args.target), timeout=60)
    check("NodeUnpublishVolume removes the mount", not os.path.ismount(args.target),
          "still mounted")
    # Idempotent, as kubelet retries.
    node.NodeUnpublishVolume(pb.NodeUnpublishVolumeRequest(
        volume_id="csi-grpcio-vol", target_path=args.target), timeout=60)
    check("NodeUnpublishVolume again succeeds", True)


def main():
    p = argparse.ArgumentParser()
    sub = p.add_subparsers(dest="cmd", required=True)
    b = sub.add_parser("bpfman")
    b.add_argument("--socket", required=True)
    b.add_argument("--object", required=True)
    b.add_argument("--program", required=True)
    c = sub.add_parser("csi")
    c.add_argument("--socket", required=True)
    c.add_argument("--target", required=True)
    c.add_argument("--app", required=True)
    c.add_argument("--map", required=True)
    c.add_argument("--driver", default="csi.go-bpfman.io")
    c.add_argument("--pod-uid", required=True)
    args = p.parse_args()
    print(f"grpcio {grpc.__version__}", flush=True)
    with tempfile.TemporaryDirectory(prefix="bpfman-grpcio-") as out:
        stubs(out, args.cmd)
        try:
            {"bpfman": run_bpfman, "csi": run_csi}[args.cmd](args)
        except grpc.RpcError as e:
            check("no unexpected RPC error", False, f"{e.code()} {e.details()}")
    print(f"interop: {passed} passed, {failed} failed", flush=True)
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
