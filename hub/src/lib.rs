//! The Bohai hub: the data-sharing pipeline and the e-licence / e-seal exchange of a city
//! government, served over HTTP and driven by the `bohai` command line.
//!
//! Where things live:
//! - `cli/`: the `bohai` command line, one module per command group;
//! - `failure`: the one classification of failures (transient, one record, a component);
//! - `config`: the TOML configuration with environment overrides;
//! - `http/`: the HTTP API, its OpenAPI document and its one error boundary;
//! - `auth`: department bearer tokens: scopes, expiry, revocation;
//! - `audit/`: the hash-chained, append-only audit log;
//! - `sharing/`: catalogue, access requests and approvals, masked reads;
//! - `ops/`: feed health, metrics, the overview behind the dashboard and `bohai status`;
//! - `pipeline/`: ingest (validate, deliver, record), connectors, the repository sink, stats;
//! - `gen`: realistic generated feeds for tests and benchmarks;
//! - `kafka/`: everything that speaks the Kafka protocol (admin, probes);
//! - `database`: the PostgreSQL pool and the versioned migrations in `hub/migrations/`;
//! - `registry`: the departments and datasets, loaded from `schemas/` and copied to the database;
//! - `server`: `bohai serve`, the process that runs the API and its share of the duties;
//! - `telemetry`: logging;
//! - `cluster/`: the instances of a hub database, and which one holds which duty (leases).

pub mod audit;
pub mod auth;
pub mod cli;
pub mod cluster;
pub mod config;
pub mod credit;
pub mod database;
pub mod duties;
pub mod failure;
pub mod gen;
pub mod http;
pub mod kafka;
pub mod licences;
pub mod ops;
pub mod pipeline;
pub mod registry;
pub mod seals;
pub mod server;
pub mod sharing;
pub mod telemetry;
