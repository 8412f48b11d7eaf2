//! `udplab._core.ChatServer` and `ChatClient`: the chat's Rust halves, driven by `udplab.chat`.

use pyo3::prelude::*;

pub(super) fn register(_m: &Bound<'_, PyModule>) -> PyResult<()> {
    Ok(())
}
