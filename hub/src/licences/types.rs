//! The registry's licence types as the licence verifier sees them.

use bohai_certs::licence::{LicenceTypes, TypeVerdict};
use bohai_schemas::{LicenceType, Registry, Violation};
use serde_json::Value;

/// The verifier's view of the hub's registry.
#[derive(Debug, Clone, Copy)]
pub struct RegistryTypes<'a>(pub &'a Registry);

impl LicenceTypes for RegistryTypes<'_> {
    fn credit_code(&self, department: &str) -> Option<&str> {
        self.0
            .department(department)
            .map(|d| d.credit_code.as_str())
    }

    fn judge(&self, licence_type: &str, issuer_department: &str, subject: &Value) -> TypeVerdict {
        judge(
            self.0.licence_type(licence_type),
            issuer_department,
            subject,
        )
    }
}

/// A type's verdict on a licence subject.
pub fn judge(
    licence_type: Option<&LicenceType>,
    issuer_department: &str,
    subject: &Value,
) -> TypeVerdict {
    let Some(t) = licence_type else {
        return TypeVerdict::Unknown;
    };
    if t.department != issuer_department {
        return TypeVerdict::WrongIssuer {
            expected: t.department.clone(),
        };
    }
    let violations = t.validate(subject);
    if violations.is_empty() {
        TypeVerdict::Valid
    } else {
        TypeVerdict::Invalid(violations.iter().map(describe).collect())
    }
}

/// `pointer (rule): message`.
pub fn describe(v: &Violation) -> String {
    format!("{} ({}): {}", v.pointer, v.rule, v.message)
}
