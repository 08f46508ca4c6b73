//! Who is calling: the one extractor that authenticates a request's bearer token, and the
//! checks that authorise it (a scope, the owning department).
//!
//! Every refusal is an [`ApiError`] with a stable code: 401 `token_missing`,
//! `token_malformed`, `token_unknown`, `token_revoked`, `token_expired`; 403 `wrong_scope`
//! and `forbidden` (another department's resource); 429 `rate_limited` (the token's rate,
//! `limits.rs`).

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{header, StatusCode};
use chrono::Utc;

use super::{ApiError, AppState};
use crate::auth::{self, Refusal, Scope, TokenRecord};

/// The authenticated caller: a live token and the department it acts for. Handlers then call
/// [`Caller::require`] with the scope they need.
#[derive(Debug, Clone)]
pub(crate) struct Caller {
    /// The department the token acts for.
    pub(crate) department: String,
    /// The token.
    pub(crate) token: TokenRecord,
}

impl From<Refusal> for ApiError {
    fn from(r: Refusal) -> Self {
        let status = if r.is_unauthenticated() {
            StatusCode::UNAUTHORIZED
        } else {
            StatusCode::FORBIDDEN
        };
        ApiError::new(status, r.code(), r.to_string())
    }
}

impl Caller {
    /// Refuses (403 `wrong_scope`) unless the token holds `scope`.
    pub(crate) fn require(&self, scope: Scope) -> Result<&Self, ApiError> {
        self.token.authorise(Utc::now(), scope)?;
        Ok(self)
    }

    /// Refuses (403 `wrong_scope`) unless the token holds one of `scopes`.
    pub(crate) fn require_any(&self, scopes: &[Scope]) -> Result<(), ApiError> {
        self.token.check_live(Utc::now())?;
        if scopes.iter().any(|s| self.has(*s)) {
            return Ok(());
        }
        let names: Vec<&str> = scopes.iter().map(|s| s.as_str()).collect();
        Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "wrong_scope",
            format!(
                "this call needs a token with one of the scopes {}; this token has {}",
                names.join(", "),
                self.token.scopes.join(", ")
            ),
        ))
    }

    /// The person holding the token, if it names one.
    pub(crate) fn person(&self) -> Option<&str> {
        self.token.actor.as_deref()
    }

    /// The caller as the licence service's actor: its department and person.
    pub(crate) fn licence_actor(&self) -> crate::licences::service::Actor {
        crate::licences::service::Actor::Department {
            code: self.department.clone(),
            person: self.token.actor.clone(),
        }
    }

    /// Whether the token holds `scope`.
    pub(crate) fn has(&self, scope: Scope) -> bool {
        self.token.has(scope)
    }

    /// Refuses (403 `forbidden`) unless the caller is `owner`; `what` names the resource.
    pub(crate) fn require_department(&self, owner: &str, what: &str) -> Result<(), ApiError> {
        if self.department == owner {
            Ok(())
        } else {
            Err(ApiError::new(
                StatusCode::FORBIDDEN,
                "forbidden",
                format!(
                    "{what} belongs to department `{owner}`; your token is for `{}`",
                    self.department
                ),
            ))
        }
    }
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let value = parts
            .headers
            .get(header::AUTHORIZATION)
            .ok_or(Refusal::Missing)?;
        let token = value
            .to_str()
            .ok()
            .and_then(|v| v.strip_prefix("Bearer "))
            .ok_or(Refusal::Malformed)?;
        let token = auth::authenticate(&state.db, token.trim(), Utc::now()).await??;
        state
            .limits
            .check(token.id)
            .map_err(ApiError::rate_limited)?;
        Ok(Caller {
            department: token.department.clone(),
            token,
        })
    }
}
