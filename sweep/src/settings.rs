//! Training settings as JSON values, so that any `TrainConfig` field can be a base setting, an
//! axis, an include, an exclude or an analysis selector without a list of fields kept by hand:
//! the field names and the paper's defaults come from serialising `TrainConfig::paper`, and a
//! value is checked (and put in canonical form: `1` for an `f64` field becomes `1.0`) by
//! deserialising a `TrainConfig` with it.

use gridsweep_proto::job::{Arch, TrainConfig};
use serde_json::{Map, Value as Json};

/// The settings only axes and includes may give: they name the model and the seed.
pub(super) const JOB_KEYS: [&str; 3] = ["arch", "depth", "seed"];

/// `TrainConfig`'s fields with the paper's defaults (and placeholder arch, depth and seed).
pub(super) struct Settings {
    template: Map<String, Json>,
    /// The field names in declaration order (serde_json's map is sorted).
    order: Vec<String>,
}

impl Settings {
    /// The paper's recipe as a JSON object.
    pub(super) fn new() -> Self {
        let paper = TrainConfig::paper(Arch::Vgg, 8, 0);
        let template = match serde_json::to_value(&paper) {
            Ok(Json::Object(map)) => map,
            _ => Map::new(),
        };
        let order = match serde_yaml::to_value(&paper) {
            Ok(serde_yaml::Value::Mapping(map)) => map.keys().filter_map(|k| k.as_str().map(str::to_owned)).collect(),
            _ => template.keys().cloned().collect(),
        };
        Settings { template, order }
    }

    /// The field names in declaration order.
    pub(super) fn order(&self) -> &[String] {
        &self.order
    }

    /// The paper's recipe, every field present.
    pub(super) fn template(&self) -> &Map<String, Json> {
        &self.template
    }

    /// Whether `key` is a `TrainConfig` field.
    pub(super) fn is_field(&self, key: &str) -> bool {
        self.template.contains_key(key)
    }

    /// The message for an unknown key, listing the fields `allowed` keeps (and the closest one).
    pub(super) fn unknown(&self, key: &str, allowed: impl Fn(&str) -> bool) -> String {
        let names: Vec<&str> = self.order.iter().map(String::as_str).filter(|k| allowed(k)).collect();
        let list = names.iter().map(|n| format!("`{n}`")).collect::<Vec<_>>().join(", ");
        let hint = names
            .iter()
            .map(|n| (edit_distance(key, n), *n))
            .filter(|&(d, n)| d <= 2 && d < n.len())
            .min()
            .map(|(_, n)| format!(" (did you mean `{n}`?)"))
            .unwrap_or_default();
        if self.is_field(key) {
            format!("`{key}` cannot be set here; expected one of {list}")
        } else {
            format!("unknown field `{key}`{hint}, expected one of {list}")
        }
    }

    /// `value` as field `key` holds it, or why it cannot be that field's value.
    pub(super) fn canonical(&self, key: &str, value: &serde_yaml::Value) -> Result<Json, String> {
        let json = serde_json::to_value(value).map_err(|e| format!("not a setting's value: {e}"))?;
        let mut object = self.template.clone();
        object.insert(key.to_owned(), json);
        let config: TrainConfig = serde_json::from_value(Json::Object(object)).map_err(|e| e.to_string())?;
        match serde_json::to_value(config) {
            Ok(Json::Object(mut map)) => map.remove(key).ok_or_else(|| format!("unknown field `{key}`")),
            Ok(_) => Err("a training config must serialise to a map".to_owned()),
            Err(e) => Err(e.to_string()),
        }
    }

    /// The config that `object` (a complete set of canonical values) describes.
    pub(super) fn build(object: Map<String, Json>) -> Result<TrainConfig, String> {
        serde_json::from_value(Json::Object(object)).map_err(|e| e.to_string())
    }
}

/// A value as it is printed in messages and job listings.
pub(super) fn show(value: &Json) -> String {
    match value {
        Json::Null => "none".to_owned(),
        Json::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// Levenshtein distance, for "did you mean".
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut diagonal = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let next = (diagonal + usize::from(ca != *cb)).min(row[j] + 1).min(row[j + 1] + 1);
            diagonal = row[j + 1];
            row[j + 1] = next;
        }
    }
    row[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canonical_values_take_the_fields_type() {
        let s = Settings::new();
        let v = |y: &str| serde_yaml::from_str::<serde_yaml::Value>(y).unwrap_or(serde_yaml::Value::Null);
        assert_eq!(s.canonical("lr", &v("1")), Ok(Json::from(1.0)));
        assert_eq!(s.canonical("arch", &v("grid")), Ok(Json::from("grid")));
        assert_eq!(s.canonical("train_subset", &v("~")), Ok(Json::Null));
        assert!(s.canonical("epochs", &v("many")).is_err_and(|e| e.contains("expected u32")));
        assert!(s.canonical("epochs", &v("-1")).is_err());
        assert!(s.unknown("epoch", |_| true).contains("did you mean `epochs`?"));
        assert_eq!(edit_distance("kitten", "sitting"), 3);
    }
}
