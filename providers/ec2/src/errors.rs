//! EC2 errors turned into messages that say what to do.

use std::error::Error;
use std::fmt::Debug;

use aws_sdk_ec2::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use provision_provider::ProviderError;

pub const CLOUD: &str = "ec2";

const CREDENTIALS_HINT: &str = "check the credentials (AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY, or the profile given with --profile), the region and the endpoint";

/// Maps an SDK error of `call` (an EC2 action name) to a [`ProviderError`].
pub fn call_error<E, R>(call: &'static str, err: SdkError<E, R>) -> ProviderError
where
    E: ProvideErrorMetadata + Error + Send + Sync + 'static,
    R: Debug,
{
    match &err {
        SdkError::ServiceError(_) => explain(
            call,
            err.code().unwrap_or("Unknown"),
            err.message().unwrap_or(""),
        ),
        SdkError::TimeoutError(_) => ProviderError::Call {
            cloud: CLOUD,
            call: call.into(),
            message: "timed out (after the SDK's retries)".into(),
            retryable: true,
        },
        // No credentials, no region, endpoint unreachable: nothing a retry fixes.
        _ => ProviderError::Unavailable {
            cloud: CLOUD,
            message: format!("{call}: {}", DisplayErrorContext(&err)),
            hint: CREDENTIALS_HINT.into(),
        },
    }
}

/// The error an EC2 error `code` of `call` means for the user.
pub fn explain(call: &str, code: &str, message: &str) -> ProviderError {
    let call_error = |text: String, retryable: bool| ProviderError::Call {
        cloud: CLOUD,
        call: call.into(),
        message: text,
        retryable,
    };
    match code {
        "AuthFailure" | "InvalidClientTokenId" | "SignatureDoesNotMatch" | "UnrecognizedClientException"
        | "ExpiredToken" | "RequestExpired" => ProviderError::Unavailable {
            cloud: CLOUD,
            message: format!("{call}: the credentials were refused ({code})"),
            hint: CREDENTIALS_HINT.into(),
        },
        "UnauthorizedOperation" | "AccessDenied" | "AccessDeniedException" => call_error(
            format!(
                "not allowed ({code}): the credentials lack permission for ec2:{call}; grant the actions listed in examples/ec2-iam-policy.json"
            ),
            false,
        ),
        "InsufficientInstanceCapacity" => call_error(
            "EC2 has no capacity for this instance type in the subnet's availability zone right now: use a subnet in another zone or another instance type (--flavor), or try again later".into(),
            true,
        ),
        "InstanceLimitExceeded" | "VcpuLimitExceeded" => call_error(
            format!(
                "the account's quota of running instances (vCPUs) in this region is reached ({code}: {message}): terminate instances, or ask for a higher 'Running On-Demand instances' quota in Service Quotas"
            ),
            false,
        ),
        "InvalidAMIID.NotFound" | "InvalidAMIID.Malformed" | "InvalidAMIID.Unavailable" => {
            ProviderError::Invalid {
                field: "image".into(),
                message: format!(
                    "EC2 has no such image in this region ({code}: {message}): give an AMI id of this region, or a name with ec2.ami_owner"
                ),
            }
        }
        "InvalidSubnetID.NotFound" | "InvalidSubnetID.Malformed" | "InvalidSubnetId.Malformed" => {
            ProviderError::Invalid {
                field: "ec2.subnet".into(),
                message: format!(
                    "no such subnet in this region ({code}: {message}): give a subnet id from `aws ec2 describe-subnets`"
                ),
            }
        }
        // A chosen private address (a restored Swarm manager keeps the
        // backed-up one's) that an instance or interface holds already.
        "InvalidIPAddress.InUse" => ProviderError::Invalid {
            field: "private address".into(),
            message: format!(
                "EC2 says the address is in use ({message}): terminate what holds it (an old \
                 manager's instance or interface) and run the same command again"
            ),
        },
        "InvalidInstanceType" => ProviderError::Invalid {
            field: "flavor".into(),
            message: format!(
                "EC2 has no such instance type here ({message}): give one like t3.small or m6i.large"
            ),
        },
        "RequestLimitExceeded" | "Throttling" | "ThrottlingException" | "InternalError"
        | "InternalFailure" | "ServiceUnavailable" | "Unavailable" => {
            call_error(format!("{code}: {message}"), true)
        }
        _ => call_error(format!("{code}: {message}"), false),
    }
}

/// True when `err` is an EC2 error with one of `codes`.
pub fn has_code<E, R>(err: &SdkError<E, R>, codes: &[&str]) -> bool
where
    E: ProvideErrorMetadata,
{
    err.code().is_some_and(|c| codes.contains(&c))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refused_credentials_say_what_to_check() {
        let e = explain(
            "DescribeInstances",
            "AuthFailure",
            "AWS was not able to validate",
        );
        assert!(matches!(e, ProviderError::Unavailable { .. }));
        assert!(e.to_string().contains("--profile"), "{e}");
    }

    #[test]
    fn capacity_is_retryable_and_names_a_way_out() {
        let e = explain("RunInstances", "InsufficientInstanceCapacity", "");
        assert!(e.is_retryable());
        assert!(e.to_string().contains("another instance type"), "{e}");
    }

    #[test]
    fn quota_names_the_quota() {
        let e = explain("RunInstances", "InstanceLimitExceeded", "limit 5");
        assert!(!e.is_retryable());
        assert!(e.to_string().contains("Running On-Demand"), "{e}");
    }

    #[test]
    fn unauthorized_points_at_the_policy() {
        let e = explain("RunInstances", "UnauthorizedOperation", "encoded message");
        assert!(e.to_string().contains("ec2:RunInstances"), "{e}");
        assert!(e.to_string().contains("ec2-iam-policy.json"), "{e}");
    }

    #[test]
    fn unknown_image_and_subnet_name_the_field() {
        let e = explain("DescribeImages", "InvalidAMIID.NotFound", "ami-1");
        assert!(e.to_string().starts_with("image:"), "{e}");
        let e = explain("DescribeSubnets", "InvalidSubnetID.NotFound", "subnet-1");
        assert!(e.to_string().starts_with("ec2.subnet:"), "{e}");
    }

    #[test]
    fn throttling_and_server_errors_are_retryable() {
        for code in [
            "RequestLimitExceeded",
            "Throttling",
            "InternalError",
            "Unavailable",
        ] {
            assert!(explain("X", code, "").is_retryable(), "{code}");
        }
        assert!(!explain("X", "InvalidParameterValue", "").is_retryable());
    }
}
