//! The gridsweep worker library: the paper's models (`models`), model inspection (`inspect`) and
//! the device probe (`devices`). Training and the coordinator client arrive with issues #3, #4.

pub mod devices;
pub mod inspect;
pub mod models;
