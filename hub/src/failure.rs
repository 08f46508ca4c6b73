//! The one classification of failures that every retrying loop of the hub uses (connectors,
//! the ingest producer, the repository sink, licence events, subscription delivery, background
//! duties): what to do with an error is decided here, once, from its type and code.
//!
//! - [`Failure::Transient`]: a dependency is away or busy (connection lost, timeout,
//!   serialization failure, broker away). Wait ([`crate::pipeline::Backoff`]), count the
//!   retry, try again.
//! - [`Failure::Record`]: this one record can never be written (the database refuses its
//!   value, its key is too long, a value is out of a column's range). Dead-letter it with the
//!   database's reason and go on with the rest of the batch; retrying cannot help.
//! - [`Failure::Component`]: the component cannot work until someone changes something (a
//!   missing table, a permission denied, a schema that cannot load). Stop that component,
//!   show why in `bohai status`, `/api/v1/ops/feeds` and the dashboard, and leave the others
//!   running.

use rdkafka::error::KafkaError;
use rdkafka::types::RDKafkaErrorCode;

/// What a failure means for the loop that met it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    /// Retry later: the cause is expected to go away by itself.
    Transient,
    /// Dead-letter the record at fault and go on.
    Record,
    /// Stop the component and say why.
    Component,
}

impl Failure {
    /// The class of a database error.
    ///
    /// By SQLSTATE class: data exceptions (22), integrity violations (23) and program limits
    /// such as an index row too large (54) belong to a record; connection problems (08),
    /// rollbacks for serialization or deadlock (40), lack of resources (53), operator
    /// intervention such as a restart (57), an unavailable lock (55) and system errors (58)
    /// pass; a missing object or a denied permission (42), a wrong catalog or role (3D, 28)
    /// and internal errors (XX) need someone. Errors without a code: I/O, pool and TLS
    /// problems pass; decoding problems mean the code and the database disagree.
    pub fn of_database(error: &sqlx::Error) -> Failure {
        match error {
            sqlx::Error::Database(db) => match db.code() {
                Some(code) => Self::of_sqlstate(&code),
                None => Failure::Transient,
            },
            sqlx::Error::Io(_)
            | sqlx::Error::Tls(_)
            | sqlx::Error::Protocol(_)
            | sqlx::Error::PoolTimedOut
            | sqlx::Error::PoolClosed
            | sqlx::Error::WorkerCrashed => Failure::Transient,
            _ => Failure::Component,
        }
    }

    /// The class of a SQLSTATE code (five characters).
    pub fn of_sqlstate(code: &str) -> Failure {
        match code.get(..2).unwrap_or_default() {
            "22" | "23" | "54" => Failure::Record,
            "42" | "3D" | "3F" | "28" | "XX" | "0A" => Failure::Component,
            // 08, 40, 53, 55, 57, 58, 25 (a transaction aborted by an earlier error) and
            // anything not named: waiting costs little, stopping a component costs much.
            _ => Failure::Transient,
        }
    }

    /// The class of a broker error: a record the broker will never take (too large, or
    /// refused as invalid) belongs to the record; a refused authorization needs someone;
    /// everything else (brokers away, timeouts, leaders moving) passes.
    pub fn of_broker(error: &KafkaError) -> Failure {
        match error.rdkafka_error_code() {
            Some(
                RDKafkaErrorCode::MessageSizeTooLarge
                | RDKafkaErrorCode::InvalidMessageSize
                | RDKafkaErrorCode::InvalidMessage
                | RDKafkaErrorCode::InvalidRecord
                | RDKafkaErrorCode::InvalidTimestamp,
            ) => Failure::Record,
            Some(
                RDKafkaErrorCode::TopicAuthorizationFailed
                | RDKafkaErrorCode::ClusterAuthorizationFailed
                | RDKafkaErrorCode::GroupAuthorizationFailed
                | RDKafkaErrorCode::TransactionalIdAuthorizationFailed
                | RDKafkaErrorCode::SaslAuthenticationFailed
                | RDKafkaErrorCode::Authentication
                | RDKafkaErrorCode::InvalidConfig
                | RDKafkaErrorCode::PolicyViolation,
            ) => Failure::Component,
            _ => Failure::Transient,
        }
    }

    /// The class of a broker's refusal of a record that is not at fault: one the hub wrote
    /// itself (a licence event, a dead letter, whose size it bounds) or one the broker already
    /// took once (a refused record dead-lettered again). A refusal the broker would give any
    /// record needs someone; one that may pass, passes.
    pub fn of_broker_for_own_record(error: &KafkaError) -> Failure {
        match Self::of_broker(error) {
            Failure::Transient => Failure::Transient,
            Failure::Record | Failure::Component => Failure::Component,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn database_codes_fall_into_their_classes() {
        for (code, class) in [
            // unsupported Unicode escape sequence (jsonb and \u0000)
            ("22P05", Failure::Record),
            ("22021", Failure::Record),
            ("22003", Failure::Record),
            ("23505", Failure::Record),
            // index row size exceeds maximum
            ("54000", Failure::Record),
            ("08006", Failure::Transient),
            ("40001", Failure::Transient),
            ("40P01", Failure::Transient),
            ("53300", Failure::Transient),
            ("57P01", Failure::Transient),
            ("55P03", Failure::Transient),
            ("25P02", Failure::Transient),
            ("42P01", Failure::Component),
            ("42501", Failure::Component),
            ("3D000", Failure::Component),
            ("28P01", Failure::Component),
            ("XX000", Failure::Component),
        ] {
            assert_eq!(Failure::of_sqlstate(code), class, "{code}");
        }
    }

    #[test]
    fn errors_without_a_code_are_classed_by_kind() {
        assert_eq!(
            Failure::of_database(&sqlx::Error::PoolTimedOut),
            Failure::Transient
        );
        assert_eq!(
            Failure::of_database(&sqlx::Error::Io(std::io::Error::other("reset"))),
            Failure::Transient
        );
        assert_eq!(
            Failure::of_database(&sqlx::Error::ColumnNotFound("x".into())),
            Failure::Component
        );
    }

    #[test]
    fn broker_errors_fall_into_their_classes() {
        let produce = |code| KafkaError::MessageProduction(code);
        assert_eq!(
            Failure::of_broker(&produce(RDKafkaErrorCode::MessageSizeTooLarge)),
            Failure::Record
        );
        assert_eq!(
            Failure::of_broker(&produce(RDKafkaErrorCode::TopicAuthorizationFailed)),
            Failure::Component
        );
        assert_eq!(
            Failure::of_broker(&produce(RDKafkaErrorCode::BrokerTransportFailure)),
            Failure::Transient
        );
        assert_eq!(
            Failure::of_broker(&produce(RDKafkaErrorCode::MessageTimedOut)),
            Failure::Transient
        );
    }
}
