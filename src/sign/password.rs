//! The key's password: `XARCH_KEY_PASSWORD` when set (CI), else a prompt on the
//! terminal, else one line of stdin. Never a command-line argument, where it
//! would show in `ps` and the shell history.

use std::io::{BufRead, IsTerminal};

use anyhow::{Context, Result, bail};
use zeroize::Zeroizing;

pub const ENV: &str = "XARCH_KEY_PASSWORD";

/// Reads the password; `confirm` asks twice on a terminal (for a new key).
pub fn read(confirm: bool) -> Result<Zeroizing<String>> {
    if let Ok(p) = std::env::var(ENV) {
        return Ok(Zeroizing::new(p));
    }
    if std::io::stdin().is_terminal() {
        let first = Zeroizing::new(
            rpassword::prompt_password("Enter password for private key: ")
                .context("cannot read the password from the terminal")?,
        );
        if confirm {
            let again = Zeroizing::new(
                rpassword::prompt_password("Enter password for private key again: ")
                    .context("cannot read the password from the terminal")?,
            );
            if *again != *first {
                bail!("the passwords do not match");
            }
        }
        return Ok(first);
    }
    let mut line = Zeroizing::new(String::new());
    std::io::stdin()
        .lock()
        .read_line(&mut line)
        .context("cannot read the password from stdin")?;
    let trimmed = line.trim_end_matches(['\n', '\r']).to_string();
    Ok(Zeroizing::new(trimmed))
}
