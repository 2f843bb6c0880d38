//! User codes of the device authorization grant (RFC 8628 §6.1): 8 characters from an alphabet
//! without vowels or look-alikes, shown as `XXXX-XXXX`, typed in any case, dash optional.

pub const ALPHABET: &[u8; 20] = b"BCDFGHJKLMNPQRSTVWXZ";
pub const LENGTH: usize = 8;

/// A new user code, drawn uniformly, without the dash.
pub fn generate_user_code() -> String {
    super::secret::random_from(ALPHABET, LENGTH)
}

/// What a person typed, as the stored form (upper case, no dash or spaces); `None` when it
/// cannot be a user code.
pub fn normalize(typed: &str) -> Option<String> {
    let code: String = typed
        .chars()
        .filter(|c| !matches!(c, '-' | ' ' | '\t'))
        .map(|c| c.to_ascii_uppercase())
        .collect();
    (code.len() == LENGTH && code.bytes().all(|b| ALPHABET.contains(&b))).then_some(code)
}

/// `XXXX-XXXX`.
pub fn display(code: &str) -> String {
    if code.len() == LENGTH && code.is_ascii() {
        format!("{}-{}", &code[..4], &code[4..])
    } else {
        code.to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_use_the_alphabet_and_read_back_in_any_form() {
        for _ in 0..200 {
            let code = generate_user_code();
            assert_eq!(code.len(), 8);
            assert!(code.bytes().all(|b| ALPHABET.contains(&b)), "{code}");
            let shown = display(&code);
            assert_eq!(shown.len(), 9);
            assert_eq!(normalize(&shown).as_deref(), Some(code.as_str()));
            assert_eq!(
                normalize(&shown.to_lowercase()).as_deref(),
                Some(code.as_str())
            );
        }
        assert_eq!(normalize("bcdf ghjk").as_deref(), Some("BCDFGHJK"));
        for bad in [
            "",
            "BCDF-GHJ",
            "BCDF-GHJKL",
            "ABCD-EFGH",
            "BCDF-GHJ0",
            "BCDF_GHJK",
            "ВСDF-GHJK",
        ] {
            assert_eq!(normalize(bad), None, "{bad}");
        }
    }
}
