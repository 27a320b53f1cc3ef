//! The CLI's user-facing output: the one module allowed to print to stdout.

#![expect(clippy::print_stdout, reason = "this module is the CLI's stdout")]

/// Prints one line for the user.
pub(crate) fn line(text: &str) {
    println!("{text}");
}
