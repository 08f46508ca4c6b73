//! The registry's licence types as the licence verifier sees them.

use bohai_certs::licence::{LicenceTypes, TypeVerdict};
use bohai_schemas::{LicenceType, Registry, Violation};
use serde_json::Value;

/// The seal certificates the hub holds (issued by the city CA or imported), by SHA-256 of
/// their DER: the department each belongs to.
pub type SealRegister = std::collections::HashMap<[u8; 32], String>;

/// The verifier's view of the hub's registry and seal store.
#[derive(Debug, Clone, Copy)]
pub struct RegistryTypes<'a> {
    /// Departments and licence types.
    pub registry: &'a Registry,
    /// The seals held.
    pub seals: &'a SealRegister,
}

impl LicenceTypes for RegistryTypes<'_> {
    fn credit_code(&self, department: &str) -> Option<&str> {
        self.registry
            .department(department)
            .map(|d| d.credit_code.as_str())
    }

    fn judge(&self, licence_type: &str, issuer_department: &str, subject: &Value) -> TypeVerdict {
        judge(
            self.registry.licence_type(licence_type),
            issuer_department,
            subject,
        )
    }

    fn number_prefix(&self, licence_type: &str) -> Option<&str> {
        self.registry
            .licence_type(licence_type)
            .map(|t| t.number_prefix.as_str())
    }

    fn seal_department(&self, cert_sha256: &[u8; 32]) -> Option<&str> {
        self.seals.get(cert_sha256).map(String::as_str)
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

/// A licence type as the registry declares it, for the departments and services that look
/// for one to verify or to subscribe to (`GET /api/v1/licence-types`, `bohai licence types`).
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct LicenceTypeView {
    /// Type id, e.g. `driving-licence`.
    pub id: String,
    /// Code of the issuing department: the only one that issues it, and the one that decides
    /// requests to read its licences.
    pub department: String,
    /// The issuing department's Chinese name.
    pub department_name_zh: String,
    /// Chinese title, as printed on the licence.
    pub title_zh: String,
    /// English title.
    pub title_en: String,
    /// What the licence is.
    pub description: String,
    /// The letters every licence number of the type starts with, e.g. `DL`.
    pub number_prefix: String,
    /// `person` or `organisation`.
    pub holder_kind: String,
    /// Validity of a new licence unless its issuer says otherwise, e.g. `6years`.
    pub default_validity: String,
    /// Version of the subject schema.
    pub schema_version: u32,
    /// The fields a subscription to the type may be granted.
    pub subscriber_fields: Vec<String>,
}

/// Every licence type of the registry, sorted by id.
pub fn views(registry: &Registry) -> Vec<LicenceTypeView> {
    registry
        .licence_types
        .iter()
        .map(|t| LicenceTypeView {
            id: t.id.clone(),
            department: t.department.clone(),
            department_name_zh: registry
                .department(&t.department)
                .map(|d| d.name_zh.clone())
                .unwrap_or_default(),
            title_zh: t.title_zh.clone(),
            title_en: t.title_en.clone(),
            description: t.description.clone(),
            number_prefix: t.number_prefix.clone(),
            holder_kind: t.holder_kind.as_str().to_owned(),
            default_validity: humantime::format_duration(t.default_validity).to_string(),
            schema_version: t.schema_version,
            subscriber_fields: crate::sharing::subscriptions::LICENCE_FIELDS
                .iter()
                .map(|f| (*f).to_owned())
                .collect(),
        })
        .collect()
}
