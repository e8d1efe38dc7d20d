//! Name rules, checked before a name touches the filesystem or the store.

/// Chroma's rule for tenant, database and collection names: 3–512 characters of
/// `[a-zA-Z0-9._-]`, starting and ending with a letter or digit. It also excludes every
/// path trick (`/`, `..` cannot start or end a name, and `.`/`..` are too short), which is
/// why project names (directories under the workspace) use it too.
pub fn validate_name(kind: &str, name: &str) -> Result<(), String> {
    let bytes = name.as_bytes();
    let len_ok = (3..=512).contains(&bytes.len());
    let chars_ok = bytes
        .iter()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
    let ends_ok = bytes.first().is_some_and(u8::is_ascii_alphanumeric)
        && bytes.last().is_some_and(u8::is_ascii_alphanumeric);
    if len_ok && chars_ok && ends_ok && !name.contains("..") {
        Ok(())
    } else {
        Err(format!(
            "Invalid {kind} name [{name}]: expected 3-512 characters of [a-zA-Z0-9._-], \
             starting and ending with a letter or digit, without '..'"
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::validate_name;

    #[test]
    fn accepts_chroma_names() {
        for n in ["abc", "my-project", "a.b_c-9", "Tenant42", &"x".repeat(512)] {
            assert!(validate_name("project", n).is_ok(), "{n}");
        }
    }

    #[test]
    fn rejects_bad_names() {
        for n in [
            "",
            "ab",
            "..",
            "...",
            "a..b",
            "-abc",
            "abc-",
            ".abc",
            "ab/c",
            "a\\bc",
            "a bc",
            "ab\0c",
            "été",
            &"x".repeat(513),
            "../etc",
        ] {
            assert!(validate_name("project", n).is_err(), "{n:?}");
        }
    }
}
