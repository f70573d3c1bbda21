//! KMS key policies snapferry needs. The sharing CMK's policy is what makes a shared,
//! encrypted snapshot copyable by the backup account; leaving out `kms:CreateGrant` is what
//! produces `KMSKeyNotAccessibleFault` at copy time (RDS User Guide, USER_ShareSnapshot, "Sharing
//! encrypted snapshots"; KMS Developer Guide, grants).

use serde_json::{Value, json};

/// Actions the backup accounts need on the source account's sharing key to copy from it.
pub const TARGET_KEY_ACTIONS: [&str; 5] =
    ["kms:Encrypt", "kms:Decrypt", "kms:ReEncrypt*", "kms:GenerateDataKey*", "kms:DescribeKey"];
/// Grant actions, allowed only for grants that AWS services (RDS, EBS) create on our behalf.
pub const TARGET_GRANT_ACTIONS: [&str; 3] = ["kms:CreateGrant", "kms:ListGrants", "kms:RevokeGrant"];

/// The sharing CMK's key policy in `region`: the owner account keeps full control (without
/// it PutKeyPolicy fails with `MalformedPolicyDocumentException`), each target account gets
/// what copying a shared snapshot needs, and only through RDS in that region
/// (`kms:ViaService`; KMS Developer Guide, conditions-kms, kms:ViaService). The CDK source
/// stack writes the same policy.
pub fn sharing_key_policy(owner_account: &str, region: &str, target_accounts: &[String]) -> Value {
    let targets: Vec<String> = target_accounts.iter().map(|a| format!("arn:aws:iam::{a}:root")).collect();
    let via_rds = format!("rds.{region}.amazonaws.com");
    json!({
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "OwnerAccountAdministers",
                "Effect": "Allow",
                "Principal": {"AWS": format!("arn:aws:iam::{owner_account}:root")},
                "Action": "kms:*",
                "Resource": "*"
            },
            {
                "Sid": "BackupAccountsUseTheKey",
                "Effect": "Allow",
                "Principal": {"AWS": targets},
                "Action": TARGET_KEY_ACTIONS,
                "Resource": "*",
                "Condition": {"StringEquals": {"kms:ViaService": via_rds}}
            },
            {
                "Sid": "BackupAccountsGrantToAwsServices",
                "Effect": "Allow",
                "Principal": {"AWS": targets},
                "Action": TARGET_GRANT_ACTIONS,
                "Resource": "*",
                "Condition": {
                    "Bool": {"kms:GrantIsForAWSResource": "true"},
                    "StringEquals": {"kms:ViaService": via_rds}
                }
            }
        ]
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grants_are_conditioned_and_owner_keeps_control() {
        let p = sharing_key_policy("111111111111", "eu-west-1", &["222222222222".into()]);
        let statements = p["Statement"].as_array().unwrap();
        let grant = statements.iter().find(|s| s["Action"].to_string().contains("kms:CreateGrant")).unwrap();
        assert_eq!(grant["Condition"]["Bool"]["kms:GrantIsForAWSResource"], "true");
        assert_eq!(grant["Principal"]["AWS"][0], "arn:aws:iam::222222222222:root");
        let use_key = statements.iter().find(|s| s["Sid"] == "BackupAccountsUseTheKey").unwrap();
        assert_eq!(use_key["Condition"]["StringEquals"]["kms:ViaService"], "rds.eu-west-1.amazonaws.com");
        assert_eq!(grant["Condition"]["StringEquals"]["kms:ViaService"], "rds.eu-west-1.amazonaws.com");
        assert!(!use_key["Action"].to_string().contains("CreateGrant"));
        assert_eq!(statements[0]["Principal"]["AWS"], "arn:aws:iam::111111111111:root");
        assert_eq!(statements[0]["Action"], "kms:*");
    }
}

/// Whether two key references name the same key: AWS reports key ARNs, configuration may
/// hold a key ARN or a bare key id.
pub fn same_key(a: &str, b: &str) -> bool {
    fn id(k: &str) -> &str {
        k.rsplit_once(":key/").map_or(k, |(_, id)| id)
    }
    !a.is_empty() && id(a) == id(b)
}

#[cfg(test)]
mod same_key_tests {
    use super::same_key;

    #[test]
    fn key_arns_and_ids_compare() {
        assert!(same_key("arn:aws:kms:us-east-1:222222222222:key/k-1", "k-1"));
        assert!(same_key("k-1", "arn:aws:kms:us-east-1:222222222222:key/k-1"));
        assert!(!same_key("arn:aws:kms:us-east-1:222222222222:key/k-1", "arn:aws:kms:us-east-1:222222222222:key/k-2"));
        assert!(!same_key("", ""));
    }
}
