#!/usr/bin/env python3
"""Write a `docker save`-format image archive of a root filesystem directory, for
`ctr images import` (no registry, nothing downloaded).

    image.py ROOTFS OUT.tar REF ENTRYPOINT_JSON CMD_JSON

The image has one layer (ROOTFS, owners and modes kept), the given entrypoint and cmd, and
PATH set as Docker's images have it.
"""
import hashlib
import io
import json
import os
import sys
import tarfile


def layer_bytes(rootfs):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as t:
        for name in sorted(os.listdir(rootfs)):
            t.add(os.path.join(rootfs, name), arcname=name, recursive=True)
    return buf.getvalue()


def main():
    if len(sys.argv) != 6:
        sys.exit(__doc__)
    rootfs, out, ref, entrypoint, cmd = sys.argv[1:]
    layer = layer_bytes(rootfs)
    diff_id = "sha256:" + hashlib.sha256(layer).hexdigest()
    config = {
        "architecture": "amd64",
        "os": "linux",
        "config": {
            "Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],
            "Entrypoint": json.loads(entrypoint),
            "Cmd": json.loads(cmd),
            "WorkingDir": "/",
        },
        "rootfs": {"type": "layers", "diff_ids": [diff_id]},
        "history": [{"created_by": "husk integration/cri/image.py"}],
    }
    cfg = json.dumps(config, sort_keys=True).encode()
    cfg_name = hashlib.sha256(cfg).hexdigest() + ".json"
    manifest = json.dumps(
        [{"Config": cfg_name, "RepoTags": [ref], "Layers": ["layer.tar"]}]
    ).encode()
    with tarfile.open(out, "w") as t:
        for name, data in (("layer.tar", layer), (cfg_name, cfg), ("manifest.json", manifest)):
            ti = tarfile.TarInfo(name)
            ti.size = len(data)
            ti.mode = 0o644
            t.addfile(ti, io.BytesIO(data))


if __name__ == "__main__":
    main()
