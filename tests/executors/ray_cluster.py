"""Ray's own multi-node test utility in a process of its own, for tests: a head and a second node of one
CPU each, on loopback only (``RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0`` before Ray is imported), with the
authentication the environment asks for. Prints the cluster's address, then reads commands from
stdin: ``remove`` (remove the second node: a node failure; prints ``removed``) and ``stop``.

    python tests/executors/ray_cluster.py
"""

from __future__ import annotations

import os
import sys

os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"  # every node's address is 127.0.0.1

import ray
from ray.cluster_utils import Cluster


def main() -> None:
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1, "include_dashboard": False})
    second = cluster.add_node(num_cpus=1)
    ray.init(address=cluster.address)
    cluster.wait_for_nodes()
    print(cluster.address, flush=True)
    try:
        for line in sys.stdin:
            if line.strip() == "remove":
                cluster.remove_node(second)
                print("removed", flush=True)
            elif line.strip() == "stop":
                break
    finally:
        ray.shutdown()
        cluster.shutdown()


if __name__ == "__main__":
    main()
