"""What a training run needs in a cluster that ``kfp.local`` does not: the data directory on a
shared volume in every step (the steps hand the lake, bundles and the quality baseline to each
other through it) and the source database's URL from a Secret instead of a run parameter."""

from dataclasses import dataclass
from typing import Any

DATA_MOUNT = "/data"
SOURCE_DB_SECRET_KEY = "url"


@dataclass(frozen=True)
class ClusterConfig:
    """``data_pvc``: an existing ReadWriteMany PVC, mounted at ``/data`` in every step;
    ``source_db_secret``: a Secret whose key ``url`` becomes ``RECSYS_SOURCE_DB`` (the steps read
    it when the ``source_db`` parameter is empty)."""

    data_pvc: str
    source_db_secret: str = ""

    def apply(self, task: Any) -> Any:
        from kfp import kubernetes

        kubernetes.mount_pvc(task, pvc_name=self.data_pvc, mount_path=DATA_MOUNT)
        if self.source_db_secret:
            kubernetes.use_secret_as_env(
                task,
                secret_name=self.source_db_secret,
                secret_key_to_env={SOURCE_DB_SECRET_KEY: "RECSYS_SOURCE_DB"},
            )
        return task
