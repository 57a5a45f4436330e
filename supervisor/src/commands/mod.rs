//! The operator commands besides `run`, one module each.

pub mod doctor;
pub mod status;
