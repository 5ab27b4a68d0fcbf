//! Scenario → ordered steps; pure and deterministic.
