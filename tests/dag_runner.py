"""Run a DAG defined in a test through dag.test() on the session's migrated sqlite DB."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def run_dag(dag: Any, **kwargs: Any) -> Any:
    """
    Serialize ``dag`` into the metadata DB (dag.test() refuses a DAG it cannot find there), then run it.

    Uses Airflow's DagBag sync, the same path the DAG processor takes for a file in the dags folder.
    """
    from airflow.dag_processing.bundles.manager import DagBundlesManager

    DagBundlesManager().sync_bundles_to_db()
    bag = dagbag_class()(collect_dags=False)
    bag.bag_dag(dag)
    try:  # Airflow 3.2 and newer
        from airflow.dag_processing.dagbag import sync_bag_to_db
    except ImportError:
        try:  # Airflow 3.1
            from airflow.models.dagbag import sync_bag_to_db
        except ImportError:  # Airflow 3.0: a DagBag method, which needs the path a DagBag would have set
            if getattr(dag, "relative_fileloc", None) is None:
                dag.relative_fileloc = Path(dag.fileloc).name
            bag.sync_to_db("dags-folder", None)
            return dag.test(**kwargs)
    sync_bag_to_db(bag, "dags-folder", None)
    return dag.test(**kwargs)


def dagbag_class() -> Any:
    """Airflow's ``DagBag``: in ``airflow.dag_processing.dagbag`` from 3.2, ``airflow.models.dagbag`` before."""
    try:
        from airflow.dag_processing.dagbag import DagBag
    except ImportError:
        from airflow.models.dagbag import DagBag
    return DagBag


def task_states(dag_run: Any) -> dict[str, Any]:
    """``{task_id or task_id[map_index]: state}`` of a finished run."""
    states = {}
    for ti in dag_run.get_task_instances():
        key = ti.task_id if ti.map_index < 0 else f"{ti.task_id}[{ti.map_index}]"
        states[key] = ti.state
    return states


def xcom(dag_run: Any, task_id: str, key: str = "return_value", map_index: int = -1) -> Any:
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session

    with create_session() as session:
        row = (
            session.query(XComModel)
            .filter_by(
                dag_id=dag_run.dag_id, run_id=dag_run.run_id, task_id=task_id, key=key, map_index=map_index
            )
            .one_or_none()
        )
        return None if row is None else XComModel.deserialize_value(row)


def run_cleared(dag: Any, dag_run: Any, **kwargs: Any) -> Any:
    """
    Clear every task of ``dag_run`` and run it again, as a person clearing the run in the UI would:
    the run keeps its XComs and task state store rows (only each task's own try starts afresh).

    dag.test() on the same logical date clears the run's tasks too, but then deletes the run and
    makes a new one, dropping everything the run stored; here its run lookup returns the cleared run.
    """
    import importlib

    from airflow.models.dagrun import DagRun
    from airflow.utils.state import DagRunState

    def cleared_run(**given: Any) -> Any:
        session = given["session"]
        run = session.query(DagRun).filter_by(dag_id=dag.dag_id, run_id=dag_run.run_id).one()
        run.state = DagRunState.RUNNING
        if hasattr(run, "clear_number"):
            run.clear_number = (run.clear_number or 0) + 1  # as a clear from the UI counts it
        run.dag = given["dag"]  # as the run lookup it stands in for sets it
        session.commit()
        return run

    patched = []
    for module_name in ("airflow.models.dagrun", "airflow.models.dag", "airflow.sdk.definitions.dag"):
        try:
            module = importlib.import_module(module_name)
        except ImportError:
            continue
        for name in ("get_or_create_dagrun", "_get_or_create_dagrun"):
            if hasattr(module, name):
                patched.append((module, name, getattr(module, name)))
                setattr(module, name, cleared_run)
    if not patched:
        raise RuntimeError("this Airflow's dag.test() has no run lookup to point at the cleared run")
    try:
        kwargs.setdefault("logical_date", dag_run.logical_date)
        return dag.test(**kwargs)
    finally:
        for module, name, original in patched:
            setattr(module, name, original)
