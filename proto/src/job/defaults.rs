//! The paper's default settings, as functions for serde's `default = "..."` attributes and for
//! [`TrainConfig::paper`](super::TrainConfig::paper).

/// Passes over the training set: 300.
pub fn epochs() -> u32 {
    300
}

/// Images per SGD step: 128.
pub fn batch_size() -> i64 {
    128
}

/// Initial learning rate: 0.1.
pub fn lr() -> f64 {
    0.1
}

/// SGD momentum: 0.9.
pub fn momentum() -> f64 {
    0.9
}

/// A switch the paper has on (Nesterov momentum, flips).
pub fn yes() -> bool {
    true
}

/// L2 weight decay: 4e-4.
pub fn weight_decay() -> f64 {
    4e-4
}

/// The learning-rate drops, as fractions of the epochs: at 50% and 75%.
pub fn milestones() -> Vec<f64> {
    vec![0.5, 0.75]
}

/// The learning-rate factor at each drop: 0.1.
pub fn gamma() -> f64 {
    0.1
}

/// Zero padding of the random crop: 4.
pub fn crop_padding() -> i64 {
    4
}

/// Images per evaluation batch: 500 (speed and memory only).
pub fn eval_batch_size() -> i64 {
    500
}

/// Validation images per gradient of the analysis: 100.
pub fn grad_batch_size() -> i64 {
    100
}
