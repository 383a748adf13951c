//! What every CLI test reads off a run of the `entitle` binary.
#![allow(dead_code)]

use std::process::Output;

use serde_json::Value;

/// The exit status (a test fails if the process was killed).
pub fn exit_code(output: &Output) -> i32 {
    output.status.code().expect("entitle exited, not killed")
}

/// The one JSON object `--json` promises on stdout.
pub fn json_out(output: &Output) -> Value {
    let stdout = String::from_utf8_lossy(&output.stdout);
    let mut values = serde_json::Deserializer::from_str(&stdout).into_iter::<Value>();
    let value = match values.next() {
        Some(Ok(value)) => value,
        other => panic!(
            "stdout is not JSON ({other:?}):\n{stdout}\nstderr:\n{}",
            String::from_utf8_lossy(&output.stderr)
        ),
    };
    assert!(
        values.next().is_none(),
        "more than one JSON value:\n{stdout}"
    );
    assert!(value.is_object(), "not an object: {value}");
    value
}
