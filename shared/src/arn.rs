//! The one ARN type: parsing (`arn:PARTITION:SERVICE:REGION:ACCOUNT:RESOURCE`) and the
//! snapshot ARNs snapferry builds, for every resource kind.

use crate::ResourceKind;

/// The parts of an ARN. `resource` may itself contain `:` (automated RDS snapshots are
/// `snapshot:rds:...`), so it is everything after the fifth colon.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Arn<'a> {
    pub partition: &'a str,
    pub service: &'a str,
    pub region: &'a str,
    pub account: &'a str,
    pub resource: &'a str,
}

impl<'a> Arn<'a> {
    pub fn parse(s: &'a str) -> Option<Arn<'a>> {
        let mut parts = s.splitn(6, ':');
        if parts.next()? != "arn" {
            return None;
        }
        let (partition, service, region, account, resource) =
            (parts.next()?, parts.next()?, parts.next()?, parts.next()?, parts.next()?);
        Some(Arn { partition, service, region, account, resource })
    }

    /// The identifier after the resource type: RDS `snapshot:ID` (IDs may hold `:`, as
    /// automated `rds:...` ones do) and EC2 `snapshot/ID`.
    pub fn name(&self) -> &'a str {
        self.resource.split_once([':', '/']).map_or(self.resource, |(_, id)| id)
    }

    /// The region, also for the form EBS events use, which puts it in the account field
    /// (`arn:aws:ec2::us-east-1:snapshot/snap-...`; EBS User Guide, EventBridge for EBS).
    pub fn region_any_field(&self) -> Option<&'a str> {
        let looks_like_region = |f: &&str| !f.is_empty() && f.contains('-') && !f.bytes().all(|b| b.is_ascii_digit());
        [self.region, self.account].into_iter().find(looks_like_region)
    }
}

/// The name at the end of `s` when it is an ARN, `s` itself otherwise.
pub fn name_of(s: &str) -> &str {
    Arn::parse(s).map_or(s, |a| a.name())
}

/// The regular ARN of a snapshot of `kind` named `name` (for EBS, the `snap-...` id).
pub fn snapshot_arn(kind: ResourceKind, region: &str, account: &str, name: &str) -> String {
    crate::kinds::of(kind).snapshot_arn(region, account, name)
}

/// The kind of the snapshot `arn` names (its service and resource type), if it names one.
pub fn snapshot_kind(arn: &str) -> Option<ResourceKind> {
    let a = Arn::parse(arn)?;
    crate::kinds::all().find(|&kind| {
        let k = crate::kinds::of(kind);
        k.arn_service == a.service && a.resource.starts_with(k.snapshot_arn_part)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_snapshot_arn_names_its_kind() {
        for kind in ResourceKind::ALL {
            assert_eq!(snapshot_kind(&snapshot_arn(kind, "eu-west-1", "111111111111", "x")), Some(kind), "{kind}");
        }
        assert_eq!(snapshot_kind("arn:aws:rds:eu-west-1:111111111111:db:orders"), None);
        assert_eq!(snapshot_kind("snap-0abc"), None);
    }

    #[test]
    fn arns_parse() {
        let a = Arn::parse("arn:aws:rds:eu-west-1:111111111111:cluster-snapshot:rds:db-2026").unwrap();
        assert_eq!((a.service, a.region, a.account), ("rds", "eu-west-1", "111111111111"));
        assert_eq!(a.resource, "cluster-snapshot:rds:db-2026");
        assert_eq!(a.name(), "rds:db-2026");
        let e = Arn::parse("arn:aws:ec2:us-east-1:222222222222:snapshot/snap-0abc").unwrap();
        assert_eq!(e.name(), "snap-0abc");
        assert_eq!(Arn::parse("snap-0abc"), None);
        assert_eq!(Arn::parse("arn:broken"), None);
    }

    #[test]
    fn names_of_arns_and_plain_ids() {
        let cases = [
            ("arn:aws:rds:us-east-1:1:snapshot:mydb-1", "mydb-1"),
            ("arn:aws:rds:us-east-1:1:cluster-snapshot:c-1", "c-1"),
            ("arn:aws:rds:us-east-1:1:snapshot:rds:mydb-2026", "rds:mydb-2026"),
            ("arn:aws:ec2::us-west-2:snapshot/snap-01234567", "snap-01234567"),
            ("arn:aws:ec2:us-west-2:1:snapshot/snap-0a", "snap-0a"),
            ("snap-0a", "snap-0a"),
            ("arn:broken", "arn:broken"),
        ];
        for (arn, name) in cases {
            assert_eq!(name_of(arn), name, "{arn}");
        }
    }

    #[test]
    fn regions_in_either_field() {
        let event_form = Arn::parse("arn:aws:ec2::us-east-1:snapshot/snap-0abc").unwrap();
        assert_eq!(event_form.region_any_field(), Some("us-east-1"));
        let regular = Arn::parse("arn:aws:ec2:eu-west-1:111111111111:snapshot/snap-0abc").unwrap();
        assert_eq!(regular.region_any_field(), Some("eu-west-1"));
    }

    #[test]
    fn snapshot_arns_round_trip_for_every_kind() {
        for kind in ResourceKind::ALL {
            let arn = snapshot_arn(kind, "eu-west-1", "111111111111", "snapferry-db-1");
            let parsed = Arn::parse(&arn).unwrap();
            assert_eq!((parsed.region, parsed.account, parsed.name()), ("eu-west-1", "111111111111", "snapferry-db-1"));
        }
    }
}
