"""Deleting an artifact from a run in the store: how a superseded checkpoint leaves it.

Run by the sync process for a journal's ``x`` line (``nbtrack.log_checkpoint`` with ``keep``).
Not every artifact store can delete (MLflow's local folders, ``mlflow server``'s proxied
artifacts and S3 can): where it cannot, or the artifact is not there, the checkpoint stays and
the log says so. Anything else (the store unreachable) is raised, for the upload to retry.
"""

from __future__ import annotations

import logging

__all__ = ["delete_artifact"]

log = logging.getLogger("nbtrack.sync")

# MLflow's answers that no retry changes.
_FINAL = frozenset({"RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE", "BAD_REQUEST"})


def delete_artifact(artifact_uri: str, tracking_uri: str, artifact: str, key: str) -> None:
    """Delete ``artifact`` (a path among the run's artifacts) from the run at ``artifact_uri``."""
    from mlflow.store.artifact.artifact_repository_registry import get_artifact_repository

    if not artifact or artifact.startswith("/") or ".." in artifact.split("/"):
        log.warning(
            "journal %s: artifact path %r to delete is not relative; skipped", key, artifact
        )
        return
    repository = get_artifact_repository(artifact_uri, tracking_uri=tracking_uri)
    try:
        repository.delete_artifacts(artifact)
    except (NotImplementedError, FileNotFoundError) as error:
        log.warning("journal %s: this store cannot delete %s (%s); kept", key, artifact, error)
    except Exception as error:
        if getattr(error, "error_code", None) in _FINAL or getattr(error, "status_code", 0) == 404:
            log.warning("journal %s: %s not deleted: %s", key, artifact, error)
            return
        raise
