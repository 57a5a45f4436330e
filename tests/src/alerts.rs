//! Reading alerts: fields by JSON pointer, whose container, which evidence.

use serde_json::Value;

use crate::RULE_NAME;

/// A string field of an alert by JSON pointer (`"/container/id"`).
pub fn str_at<'a>(alert: &'a Value, pointer: &str) -> Option<&'a str> {
    alert.pointer(pointer).and_then(Value::as_str)
}

/// True when `alert` is a sniffer alert (rule [`RULE_NAME`]) about container `id`.
pub fn is_alert_for(alert: &Value, id: &str) -> bool {
    str_at(alert, "/rule") == Some(RULE_NAME) && str_at(alert, "/container/id") == Some(id)
}

/// The `kind`s of an alert's `evidence` array.
pub fn evidence_kinds(alert: &Value) -> Vec<String> {
    alert
        .get("evidence")
        .and_then(Value::as_array)
        .map(|items| {
            items
                .iter()
                .filter_map(|item| item.get("kind").and_then(Value::as_str))
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default()
}

/// `action/mechanism/syscall[evidence,...] KEY=VALUE` of an alert, for a test's
/// report line; `detail` names one more field (a JSON pointer such as
/// `/process/exe`), shown by its last segment.
pub fn describe_alert(alert: &Value, detail: &str) -> String {
    format!(
        "{}/{}/{}[{}] {}={}",
        str_at(alert, "/action").unwrap_or("?"),
        str_at(alert, "/mechanism").unwrap_or("?"),
        str_at(alert, "/syscall").unwrap_or("?"),
        evidence_kinds(alert).join(","),
        detail.rsplit('/').next().unwrap_or(detail),
        str_at(alert, detail).unwrap_or("?"),
    )
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn alert_helpers_read_fields() {
        let alert = json!({
            "rule": RULE_NAME,
            "container": {"id": "c1"},
            "evidence": [{"kind": "links_libpcap"}, {"kind": "sha256", "value": "x"}],
        });
        assert!(is_alert_for(&alert, "c1"));
        assert!(!is_alert_for(&alert, "c2"));
        assert_eq!(evidence_kinds(&alert), ["links_libpcap", "sha256"]);
    }
}
