"""RDS: option-group option flags, Multi-AZ DB clusters and RDS Custom engines.

What ``snapferry doctor`` reads to find resources whose snapshots can't be
shared or copied as they are (RDS User Guide *USER_ShareSnapshot*: snapshots
with persistent or permanent options, Multi-AZ DB cluster snapshots, RDS
Custom).  Why each patch exists (the pinned moto's behaviour in brackets):

* ``DescribeOptionGroups`` / ``CreateOptionGroup`` / ``ModifyOptionGroup``
  report each option's ``Persistent`` and ``Permanent`` flags [moto leaves
  both out].  Oracle ``TDE`` (engines ``oracle-*``) is persistent and
  permanent; SQL Server TDE (engines ``sqlserver-*``; option name ``TDE`` in
  the API, ``TRANSPARENT_DATA_ENCRYPTION`` in the console, both accepted) is
  persistent only; every other option is neither.  Sources: RDS API
  *API_Option* (Persistent: "can't be removed from an option group while DB
  instances are associated"; Permanent: "can't be removed from an option
  group"), RDS API *API_CreateDBInstance* ``OptionGroupName`` ("Permanent
  options, such as the TDE option for Oracle Advanced Security TDE"), RDS
  User Guide *USER_WorkingWithOptionGroups* (persistent and permanent options),
  *Appendix.Oracle.Options.AdvSecurity*, *Appendix.SQLServer.Options* (option
  ID ``TDE`` in the AWS CLI and RDS API).  Removal of such options is not
  refused here.
* Multi-AZ DB clusters (``CreateDBCluster`` with ``Engine`` ``postgres`` or
  ``mysql`` and ``DBClusterInstanceClass``) report ``MultiAZ: true`` [moto:
  false, it counts member instances in several AZs, and it creates none].
  RDS User Guide *multi-az-db-clusters-concepts* (a writer and two readers in
  three AZs); RDS API *API_DBCluster* ``MultiAZ``.  The cluster's member
  instances are not created (``DBClusterMembers`` stays empty).
* RDS Custom engines (``custom-oracle-ee``, ``custom-oracle-ee-cdb``,
  ``custom-oracle-se2``, ``custom-oracle-se2-cdb``, ``custom-sqlserver-ee``,
  ``-se``, ``-web``, ``-dev``) can be created [moto lists some of them as valid
  and then fails with ``KeyError`` (HTTP 500) on its per-engine default port,
  version and storage tables].  Storage is always encrypted (RDS Custom
  encrypts the instance's storage: RDS User Guide *custom-setup-orcl*,
  *custom-setup-sqlserver*; a given ``KmsKeyId`` is used, else the account's
  ``aws/rds`` key), and ``CustomIamInstanceProfile`` is reported by
  ``DescribeDBInstances`` [moto drops it] (RDS API *API_CreateDBInstance*,
  *API_DBInstance*).  Without ``AllocatedStorage`` 40 GiB (the RDS Custom
  minimum, *API_CreateDBInstance*); without ``EngineVersion`` (AWS: the CEV
  name for Oracle) a placeholder version, rather than refusing.
"""

from __future__ import annotations

from typing import Any

CUSTOM_ENGINES = {
    # engine: (port, placeholder engine version)
    "custom-oracle-ee": (1521, "19.cev"),
    "custom-oracle-ee-cdb": (1521, "19.cev"),
    "custom-oracle-se2": (1521, "19.cev"),
    "custom-oracle-se2-cdb": (1521, "19.cev"),
    "custom-sqlserver-ee": (1433, "15.00.4073.23.v1"),
    "custom-sqlserver-se": (1433, "15.00.4073.23.v1"),
    "custom-sqlserver-web": (1433, "15.00.4073.23.v1"),
    "custom-sqlserver-dev": (1433, "15.00.4073.23.v1"),
}
MULTI_AZ_CLUSTER_ENGINES = ("postgres", "mysql")


def option_flags(engine_name: str, option_name: str) -> tuple[bool, bool]:
    """(Persistent, Permanent) of ``option_name`` in an option group of ``engine_name``."""
    engine, name = (engine_name or "").lower(), (option_name or "").upper()
    if engine.startswith("oracle") and name == "TDE":
        return True, True
    if engine.startswith("sqlserver") and name in ("TDE", "TRANSPARENT_DATA_ENCRYPTION"):
        return True, False
    return False, False


def install() -> None:
    from moto.rds import models as m
    from moto.rds import utils as rds_utils

    if getattr(m.OptionGroup.options.fget, "_snapferry", False):
        return

    # 1. Persistent / Permanent on every option of an option group.
    original_options = m.OptionGroup.options

    def options(self: Any) -> list[dict[str, Any]]:
        out = original_options.fget(self)
        for option in out:
            option["Persistent"], option["Permanent"] = option_flags(self.engine_name, option["OptionName"])
        return out

    options._snapferry = True  # type: ignore[attr-defined]
    m.OptionGroup.options = property(options)

    # 2. Multi-AZ DB clusters report MultiAZ.
    original_multi_az = m.DBCluster.multi_az

    def multi_az(self: Any) -> bool:
        if self.engine in MULTI_AZ_CLUSTER_ENGINES and self.db_cluster_instance_class:
            return True
        return original_multi_az.fget(self)

    m.DBCluster.multi_az = property(multi_az)

    # 3. RDS Custom engines.
    valid = set(rds_utils.DbInstanceEngine.valid_db_instance_engine())
    missing = set(CUSTOM_ENGINES) - valid
    if missing:
        original_valid = rds_utils.DbInstanceEngine.valid_db_instance_engine.__func__

        def valid_db_instance_engine(cls: Any) -> list[str]:
            return sorted(set(original_valid(cls)) | set(CUSTOM_ENGINES))

        rds_utils.DbInstanceEngine.valid_db_instance_engine = classmethod(valid_db_instance_engine)

    for engine, (_port, version) in CUSTOM_ENGINES.items():
        m.DBInstance.default_engine_versions.setdefault(engine, version)

    original_port = m.DBInstance.default_port
    original_storage = m.DBInstance.default_allocated_storage

    def default_port(engine: str) -> int:
        if engine in CUSTOM_ENGINES:
            return CUSTOM_ENGINES[engine][0]
        return original_port(engine)

    def default_allocated_storage(engine: str, storage_type: str) -> int:
        if engine in CUSTOM_ENGINES:
            return 40  # the RDS Custom minimum (RDS API CreateDBInstance, AllocatedStorage)
        return original_storage(engine=engine, storage_type=storage_type)

    m.DBInstance.default_port = staticmethod(default_port)
    m.DBInstance.default_allocated_storage = staticmethod(default_allocated_storage)

    original_init = m.DBInstance.__init__

    def __init__(self: Any, *args: Any, **kwargs: Any) -> None:
        custom = kwargs.get("engine") in CUSTOM_ENGINES
        if custom:
            kwargs["storage_encrypted"] = True
        original_init(self, *args, **kwargs)
        if self.engine in CUSTOM_ENGINES:
            self.custom_iam_instance_profile = kwargs.get("custom_iam_instance_profile")

    m.DBInstance.__init__ = __init__
