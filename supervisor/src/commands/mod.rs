//! The operator commands besides `run`, one module each.

pub mod allow;
pub mod doctor;
pub mod events;
pub mod status;
