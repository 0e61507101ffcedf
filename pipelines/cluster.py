"""What a training run needs in a cluster that ``kfp.local`` does not: the data directory on a
shared volume in every step (the steps hand the lake, bundles and the quality baseline to each
other through it) and the source database's and the online store's URLs from Secrets instead of
run parameters (a parameter is shown in the KFP UI)."""

from dataclasses import dataclass
from typing import Any

DATA_MOUNT = "/data"
SOURCE_DB_SECRET_KEY = "url"
STORE_SECRET_KEY = "online-store-url"  # the chart's credentials Secret (helm/recsys/values.yaml)


@dataclass(frozen=True)
class ClusterConfig:
    """``data_pvc``: an existing ReadWriteMany PVC, mounted at ``/data`` in every step;
    ``source_db_secret``: a Secret whose key ``url`` becomes ``RECSYS_SOURCE_DB`` (the steps read
    it when the ``source_db`` parameter is empty); ``store_secret``: one whose key
    ``online-store-url`` becomes ``RECSYS_ONLINE_STORE`` (a Redis URL with its password)."""

    data_pvc: str
    source_db_secret: str = ""
    store_secret: str = ""

    def apply(self, task: Any) -> Any:
        from kfp import kubernetes

        kubernetes.mount_pvc(task, pvc_name=self.data_pvc, mount_path=DATA_MOUNT)
        if self.source_db_secret:
            kubernetes.use_secret_as_env(
                task,
                secret_name=self.source_db_secret,
                secret_key_to_env={SOURCE_DB_SECRET_KEY: "RECSYS_SOURCE_DB"},
            )
        if self.store_secret:
            kubernetes.use_secret_as_env(
                task,
                secret_name=self.store_secret,
                secret_key_to_env={STORE_SECRET_KEY: "RECSYS_ONLINE_STORE"},
            )
        return task
