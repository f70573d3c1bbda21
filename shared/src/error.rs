//! One error type for the whole pipeline, split the way SQS handling needs it:
//! a [`Error::Retryable`] error puts the message back for a later try, a permanent one
//! sends it to the dead-letter queue (or becomes a rejection event) and is never retried.

use aws_sdk_rds::error::ProvideErrorMetadata;
use aws_smithy_runtime_api::client::orchestrator::HttpResponse;
use aws_smithy_runtime_api::client::result::SdkError;

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// The code of the permanent error a full snapshot count quota ends in (the manual
/// snapshots of an account and region): distinct from a quota wait, which clears by itself.
pub const QUOTA_FULL: &str = "SnapshotCountQuotaFull";
/// The code of the error a copy of ours that AWS reported failed, too often to make again,
/// ends in ([`Error::CopyFailed`]).
pub const COPY_FAILED: &str = "CopyFailed";

/// Why a retryable error is worth retrying; decides the backoff.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Retry {
    /// The API throttled us (`Throttling`, `RequestLimitExceeded`, ...).
    Throttled,
    /// A concurrency quota is full (copies in progress): wait for copies to finish.
    QuotaExceeded,
    /// The resource is not in a state for this yet (snapshot still `creating`).
    NotReady,
    /// Network trouble, time-outs, 5xx.
    Transient,
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{op} failed with {code} (will retry): {message}")]
    Retryable { retry: Retry, op: &'static str, code: String, message: String },

    #[error("{op} failed with {code}: {message}{}", hint_text(*hint))]
    Permanent { op: &'static str, code: String, message: String, hint: Option<&'static str> },

    #[error("{op}: {what} not found")]
    NotFound { op: &'static str, what: String },

    #[error("{op}: {what} already exists")]
    AlreadyExists { op: &'static str, what: String },

    /// The input (an event, a message) cannot be processed as it is.
    #[error("bad input: {0}")]
    BadInput(String),

    /// A policy of ours refused it (not allowlisted, filtered out, would exceed a quota).
    #[error("rejected: {0}")]
    Rejected(String),

    /// Configuration is missing or invalid; names the variable.
    #[error("configuration: {0}")]
    Config(String),

    /// Every copy slot of the destination region is taken: the step looked at the copies in
    /// progress and chose when to look again, instead of asking AWS into a full quota.
    #[error("copy slots full (will try again in {}s): {message}", after.as_secs())]
    SlotsFull { after: std::time::Duration, message: String },

    /// A snapshot count quota is full (the manual snapshots of an account and region):
    /// permanent, because it clears only when snapshots are deleted or the quota is raised,
    /// unlike a quota of copies in progress. Steps report it at once and dead-letter it.
    #[error("{op} failed with {}: {message}{}", QUOTA_FULL, hint_text(*hint))]
    QuotaFull { op: &'static str, message: String, hint: Option<&'static str> },

    /// A copy of ours that AWS reported failed, given up on: it failed as often as it is
    /// made, or there is nothing to make it again from. Permanent; reported once.
    #[error("{op} failed with {}: {message}{}", COPY_FAILED, hint_text(*hint))]
    CopyFailed { op: &'static str, message: String, hint: Option<&'static str> },
}

fn hint_text(hint: Option<&'static str>) -> String {
    hint.map(|h| format!(" (hint: {h})")).unwrap_or_default()
}

impl Error {
    pub fn is_retryable(&self) -> bool {
        matches!(self, Error::Retryable { .. } | Error::SlotsFull { .. })
    }

    pub fn retry(&self) -> Option<Retry> {
        match self {
            Error::Retryable { retry, .. } => Some(*retry),
            Error::SlotsFull { .. } => Some(Retry::QuotaExceeded),
            _ => None,
        }
    }

    /// When to try again, where the step chose it ([`Error::SlotsFull`]); else the
    /// backoff decides.
    pub fn retry_after(&self) -> Option<std::time::Duration> {
        match self {
            Error::SlotsFull { after, .. } => Some(*after),
            _ => None,
        }
    }

    /// A short machine-readable code, for logs, DLQ message attributes and rejection events.
    pub fn code(&self) -> &str {
        match self {
            Error::Retryable { code, .. } | Error::Permanent { code, .. } => code,
            Error::NotFound { .. } => "NotFound",
            Error::AlreadyExists { .. } => "AlreadyExists",
            Error::BadInput(_) => "BadInput",
            Error::Rejected(_) => "Rejected",
            Error::Config(_) => "Config",
            Error::SlotsFull { .. } => "CopySlotsFull",
            Error::QuotaFull { .. } => QUOTA_FULL,
            Error::CopyFailed { .. } => COPY_FAILED,
        }
    }

    /// Map any AWS SDK error to ours, by error code first and HTTP status second.
    pub fn from_sdk<E>(op: &'static str, err: SdkError<E, HttpResponse>) -> Error
    where
        E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    {
        let status = err.raw_response().map(|r| r.status().as_u16());
        match &err {
            SdkError::TimeoutError(_) | SdkError::DispatchFailure(_) | SdkError::ResponseError(_) => {
                return Error::Retryable {
                    retry: Retry::Transient,
                    op,
                    code: "Transport".into(),
                    message: error_chain(&err),
                };
            }
            SdkError::ConstructionFailure(_) => {
                return Error::Permanent {
                    op,
                    code: "ConstructionFailure".into(),
                    message: error_chain(&err),
                    hint: None,
                };
            }
            _ => {}
        }
        let code = err.code().unwrap_or("Unknown").to_string();
        let message = err.message().map(str::to_string).unwrap_or_else(|| error_chain(&err));
        classify(op, code, message, status)
    }
}

/// The code table. Codes from the RDS, EC2, KMS, SQS and EventBridge API references
/// (RDS User Guide CHAP_Limits and USER_CopySnapshot; EBS User Guide ebs-resource-quotas).
pub fn classify(op: &'static str, code: String, message: String, status: Option<u16>) -> Error {
    let retry = |retry| Error::Retryable { retry, op, code: code.clone(), message: message.clone() };
    let permanent = |hint| Error::Permanent { op, code: code.clone(), message: message.clone(), hint };
    match code.as_str() {
        "Throttling"
        | "ThrottlingException"
        | "RequestLimitExceeded"
        | "TooManyRequestsException"
        | "RequestThrottled"
        | "RequestThrottledException"
        | "PriorRequestNotComplete"
        | "SlowDown" => retry(Retry::Throttled),
        // Copies in progress (RDS 20 / Aurora 5 / EBS 20 per destination region): they finish, so waiting works.
        "SnapshotQuotaExceeded" | "SnapshotQuotaExceededFault" | "ResourceLimitExceeded" => retry(Retry::QuotaExceeded),
        "InvalidDBSnapshotState"
        | "InvalidDBSnapshotStateFault"
        | "InvalidDBClusterSnapshotStateFault"
        | "InvalidDBClusterStateFault"
        | "InvalidDBInstanceState"
        | "IncorrectState"
        | "PendingVerification" => retry(Retry::NotReady),
        "InternalFailure"
        | "InternalError"
        | "InternalServerError"
        | "ServiceUnavailable"
        | "Unavailable"
        | "ServiceUnavailableException"
        | "InternalException" => retry(Retry::Transient),
        "DBSnapshotNotFound"
        | "DBSnapshotNotFoundFault"
        | "DBClusterSnapshotNotFoundFault"
        | "DBInstanceNotFound"
        | "DBInstanceNotFoundFault"
        | "DBClusterNotFoundFault"
        | "InvalidSnapshot.NotFound"
        | "InvalidVolume.NotFound"
        // SQS, in its query and its JSON protocol.
        | "AWS.SimpleQueueService.NonExistentQueue"
        | "QueueDoesNotExist" => Error::NotFound { op, what: message.clone() },
        "DBSnapshotAlreadyExists"
        | "DBSnapshotAlreadyExistsFault"
        | "DBClusterSnapshotAlreadyExistsFault"
        | "DBInstanceAlreadyExists"
        | "DBInstanceAlreadyExistsFault"
        | "DBClusterAlreadyExistsFault" => Error::AlreadyExists { op, what: message.clone() },
        "KMSKeyNotAccessibleFault" | "KMS.DisabledException" | "KMS.NotFoundException" | "KMSInvalidStateException" => {
            permanent(Some(KMS_HINT))
        }
        "AccessDenied" | "AccessDeniedException" | "UnauthorizedOperation" | "AuthorizationError" => {
            permanent(Some("the function's role lacks this permission; check the stack's IAM policy and any SCPs"))
        }
        "SharedSnapshotQuotaExceeded" => {
            permanent(Some("a snapshot can be shared with at most 20 accounts; reduce the target accounts"))
        }
        "InvalidParameterValue" if message.to_ascii_lowercase().contains("managed") => permanent(Some(
            "snapshots on an AWS-managed key (aws/rds, aws/ebs) cannot be shared; snapferry copies them to its sharing CMK first",
        )),
        _ if status.is_some_and(|s| s >= 500) => retry(Retry::Transient),
        _ => permanent(None),
    }
}

const KMS_HINT: &str = "the key is disabled or deleted, or this account cannot use it: for a shared snapshot the \
source key policy must grant this account kms:Decrypt, kms:DescribeKey, kms:ReEncrypt*, kms:GenerateDataKey* and \
kms:CreateGrant (with kms:GrantIsForAWSResource), and this role needs the same on both keys";

fn error_chain(err: &dyn std::error::Error) -> String {
    let mut out = err.to_string();
    let mut source = err.source();
    while let Some(e) = source {
        out.push_str(": ");
        out.push_str(&e.to_string());
        source = e.source();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c(code: &str) -> Error {
        classify("Op", code.into(), "msg".into(), Some(400))
    }

    #[test]
    fn codes_map_to_the_right_class() {
        assert_eq!(c("Throttling").retry(), Some(Retry::Throttled));
        assert_eq!(c("RequestLimitExceeded").retry(), Some(Retry::Throttled));
        assert_eq!(c("SnapshotQuotaExceeded").retry(), Some(Retry::QuotaExceeded));
        assert_eq!(c("ResourceLimitExceeded").retry(), Some(Retry::QuotaExceeded));
        assert!(matches!(c("AWS.SimpleQueueService.NonExistentQueue"), Error::NotFound { .. }));
        assert!(matches!(c("QueueDoesNotExist"), Error::NotFound { .. }));
        assert_eq!(c("InvalidDBSnapshotState").retry(), Some(Retry::NotReady));
        assert_eq!(c("InvalidDBClusterSnapshotStateFault").retry(), Some(Retry::NotReady));
        assert_eq!(c("InternalFailure").retry(), Some(Retry::Transient));
        assert!(matches!(c("DBSnapshotNotFound"), Error::NotFound { .. }));
        assert!(matches!(c("DBClusterSnapshotAlreadyExistsFault"), Error::AlreadyExists { .. }));
        assert!(!c("AccessDenied").is_retryable());
        assert!(!c("SomethingNew").is_retryable());
        assert!(classify("Op", "SomethingNew".into(), "m".into(), Some(503)).is_retryable());
    }

    #[test]
    fn kms_errors_explain_themselves() {
        let e = c("KMSKeyNotAccessibleFault");
        assert!(!e.is_retryable());
        let text = e.to_string();
        assert!(text.contains("kms:CreateGrant"), "{text}");
        assert!(text.contains("KMSKeyNotAccessibleFault"), "{text}");
    }
}
