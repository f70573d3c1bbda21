//! Everything that differs between the resource kinds snapferry backs up, one row per
//! kind: the stores, the in-memory cloud, the sweeps and the CLI read it here instead of
//! branching on the kind. A new kind of the RDS control plane (DocumentDB, Neptune) is a
//! row here, its engine filter, and its variant in the contract's `ResourceKind`.

use crate::ResourceKind;

/// How a step learns that a copy it started has finished.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CopyCompletion {
    /// AWS announces it with an event routed back to the step (RDS-EVENT-0197 for DB
    /// snapshot copies).
    Event,
    /// Nothing is announced (cluster snapshot copies; EBS copies are not routed): the step
    /// polls with delayed re-checks.
    Recheck,
}

/// What one resource kind is, as AWS defines it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Kind {
    pub kind: ResourceKind,
    /// The service in its ARNs (`rds`, `ec2`) and of its AWS-managed key (`aws/rds`, `aws/ebs`).
    pub arn_service: &'static str,
    pub key_service: &'static str,
    /// What comes between the account and the name in a snapshot's ARN, and in its
    /// resource's (`snapshot:`, `cluster-snapshot:`, `snapshot/`; `db:`, `cluster:`, `volume/`).
    pub snapshot_arn_part: &'static str,
    pub resource_arn_part: &'static str,
    /// Whether the snapshot's identifier is the name snapferry gives it (RDS); else AWS
    /// picks the id (`snap-...`) and snapferry names it by its `snapferry:id` tag.
    pub named_by_identifier: bool,
    /// How many copies of this kind AWS runs at once into one destination region of an
    /// account, by default: 20 DB instance snapshot copies, 5 Aurora cluster snapshot
    /// copies, 20 EBS snapshot copies (RDS User Guide, CHAP_Limits and USER_CopySnapshot;
    /// Aurora User Guide, aurora-copy-snapshot; EBS User Guide, ebs-resource-quotas).
    pub copy_slots: usize,
    /// The error code AWS refuses one copy more with (`SnapshotQuotaExceeded`,
    /// `ResourceLimitExceeded`).
    pub copy_limit_code: &'static str,
    /// How a step learns that a copy into this kind's store has finished: RDS announces a
    /// DB snapshot copy's end (RDS-EVENT-0197); cluster snapshot copies are not announced,
    /// and EBS's copy notification is not routed to the step, so those are re-checked.
    pub copy_completion: CopyCompletion,
    /// AWS's name of the account's quota of manual snapshots of this kind, as RDS
    /// `DescribeAccountAttributes` reports it; `None` where the kind's API does not (EBS:
    /// Service Quotas only).
    pub snapshot_quota: Option<&'static str>,
    /// The engines the kind covers, as `DescribeDBClusters` filters them (`None`: every
    /// resource the kind's API lists). `DescribeDBClusters` also returns DocumentDB and
    /// Neptune clusters, which are not Aurora.
    pub engines: Option<&'static [&'static str]>,
    /// The engine (and version) a snapshot that names none is taken as: the in-memory
    /// cloud's databases, and an Aurora cluster snapshot restored without an engine.
    pub default_engine: Option<(&'static str, &'static str)>,
    /// The cheapest class a test restore runs on; `None` where there is no class (EBS).
    /// Aurora offers no micro class; db.t4g.medium is its smallest for both Aurora MySQL
    /// and Aurora PostgreSQL (Aurora User Guide, Concepts.DBInstanceClass).
    pub smallest_restore_class: Option<&'static str>,
    /// A resource of the kind is a database, to log in to for data checks.
    pub database: bool,
    /// A snapshot, and every copy of it, names the resource it was taken of as AWS reports
    /// it (RDS: `DBInstanceIdentifier`, `DBClusterIdentifier`), so the backup account can
    /// check which resource a shared snapshot is of. EBS copies name "an arbitrary volume
    /// ID that should not be used for any purpose" (EC2 API reference, `Snapshot.VolumeId`).
    pub copies_name_their_resource: bool,
    /// Its snapshots can be locked against deletion (EBS Snapshot Lock; RDS and Aurora
    /// have none: AWS Backup vault lock is AWS's answer there).
    pub lockable: bool,
    /// Its API lists snapshots by state (EC2 `DescribeSnapshots`, filter `status`), so the
    /// copies in progress are found without listing the account's other snapshots. RDS's
    /// `DescribeDBSnapshots` and `DescribeDBClusterSnapshots` filter by no state (their
    /// filters: the database, the snapshot, its type, the engine).
    pub lists_by_state: bool,
    /// Preflight checks of resources of this kind that cannot be protected (the operator
    /// CLI's doctor runs the ones it names).
    pub unprotectable_checks: &'static [Unprotectable],
}

/// A kind's resources that snapferry cannot protect, found by the preflight.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unprotectable {
    /// DB instances on RDS Custom, or with permanent or persistent options (TDE), whose
    /// snapshots cannot be copied across accounts as they are.
    CustomOrPermanentOptions,
    /// Clusters `DescribeDBClusters` lists that are not Aurora (Multi-AZ DB clusters,
    /// DocumentDB, Neptune): the Aurora kind does not back them up.
    NonAuroraClusters,
}

/// Every kind, in the contract's order.
pub const KINDS: [Kind; 3] = [
    Kind {
        kind: ResourceKind::DbInstance,
        arn_service: "rds",
        key_service: "rds",
        snapshot_arn_part: "snapshot:",
        resource_arn_part: "db:",
        named_by_identifier: true,
        copy_slots: 20,
        copy_limit_code: "SnapshotQuotaExceeded",
        copy_completion: CopyCompletion::Event,
        snapshot_quota: Some("ManualSnapshots"),
        engines: None,
        default_engine: Some(("postgres", "16.4")),
        smallest_restore_class: Some("db.t4g.micro"),
        database: true,
        copies_name_their_resource: true,
        lockable: false,
        lists_by_state: false,
        unprotectable_checks: &[Unprotectable::CustomOrPermanentOptions],
    },
    Kind {
        kind: ResourceKind::DbCluster,
        arn_service: "rds",
        key_service: "rds",
        snapshot_arn_part: "cluster-snapshot:",
        resource_arn_part: "cluster:",
        named_by_identifier: true,
        copy_slots: 5,
        copy_limit_code: "SnapshotQuotaExceeded",
        copy_completion: CopyCompletion::Recheck,
        snapshot_quota: Some("ManualClusterSnapshots"),
        engines: Some(&["aurora-mysql", "aurora-postgresql"]),
        default_engine: Some(("aurora-postgresql", "16.4")),
        smallest_restore_class: Some("db.t4g.medium"),
        database: true,
        copies_name_their_resource: true,
        lockable: false,
        lists_by_state: false,
        unprotectable_checks: &[Unprotectable::NonAuroraClusters],
    },
    Kind {
        kind: ResourceKind::Ebs,
        arn_service: "ec2",
        key_service: "ebs",
        snapshot_arn_part: "snapshot/",
        resource_arn_part: "volume/",
        named_by_identifier: false,
        copy_slots: 20,
        copy_limit_code: "ResourceLimitExceeded",
        copy_completion: CopyCompletion::Recheck,
        snapshot_quota: None,
        engines: None,
        default_engine: None,
        smallest_restore_class: None,
        database: false,
        copies_name_their_resource: false,
        lockable: true,
        lists_by_state: true,
        unprotectable_checks: &[],
    },
];

/// The row of `kind`.
pub fn of(kind: ResourceKind) -> &'static Kind {
    KINDS.iter().find(|k| k.kind == kind).expect("every ResourceKind has a row in KINDS")
}

/// Every kind.
pub fn all() -> impl Iterator<Item = ResourceKind> {
    KINDS.iter().map(|k| k.kind)
}

impl Kind {
    /// Whether `class` is a micro class below this kind's smallest (Aurora offers none).
    pub fn below_smallest_class(&self, class: Option<&str>) -> bool {
        let micro = |c: &str| c.ends_with(".micro");
        class.is_some_and(micro) && self.smallest_restore_class.is_some_and(|c| !micro(c))
    }

    /// The regular ARN of a snapshot of this kind named `name` (for EBS, the `snap-...` id).
    pub fn snapshot_arn(&self, region: &str, account: &str, name: &str) -> String {
        format!("arn:aws:{}:{region}:{account}:{}{name}", self.arn_service, self.snapshot_arn_part)
    }

    /// The ARN of a resource (database, cluster, volume) of this kind.
    pub fn resource_arn(&self, region: &str, account: &str, id: &str) -> String {
        format!("arn:aws:{}:{region}:{account}:{}{id}", self.arn_service, self.resource_arn_part)
    }

    /// Whether a resource running `engine` is of this kind (a kind without an engine filter
    /// takes every one its API lists).
    pub fn covers_engine(&self, engine: Option<&str>) -> bool {
        match self.engines {
            None => true,
            Some(engines) => engine.is_some_and(|e| engines.contains(&e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_of_the_contract_has_exactly_one_row() {
        for kind in ResourceKind::ALL {
            assert_eq!(KINDS.iter().filter(|k| k.kind == kind).count(), 1, "{kind}");
        }
        assert_eq!(all().collect::<Vec<_>>(), ResourceKind::ALL);
    }

    #[test]
    fn aurora_is_aurora_only() {
        let aurora = of(ResourceKind::DbCluster);
        assert!(aurora.covers_engine(Some("aurora-postgresql")) && aurora.covers_engine(Some("aurora-mysql")));
        for other in ["neptune", "docdb", "mysql", "postgres"] {
            assert!(!aurora.covers_engine(Some(other)), "{other}");
        }
        assert!(!aurora.covers_engine(None));
        assert!(of(ResourceKind::DbInstance).covers_engine(Some("mysql")));
    }

    #[test]
    fn arns_of_each_kind() {
        let r = of(ResourceKind::DbCluster);
        assert_eq!(
            r.snapshot_arn("us-east-1", "111111111111", "s"),
            "arn:aws:rds:us-east-1:111111111111:cluster-snapshot:s"
        );
        assert_eq!(r.resource_arn("us-east-1", "111111111111", "c"), "arn:aws:rds:us-east-1:111111111111:cluster:c");
        let e = of(ResourceKind::Ebs);
        assert_eq!(
            e.snapshot_arn("eu-west-1", "222222222222", "snap-1"),
            "arn:aws:ec2:eu-west-1:222222222222:snapshot/snap-1"
        );
    }
}
