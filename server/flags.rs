//! The command-line flag tables of `torsion` and `torsion bench`: one
//! shape for a flag, one way to find it and one way to print it, so that
//! parsing and `--help` cannot disagree.

/// A usage error: printed with a hint, exit code 2.
#[derive(Debug, PartialEq, Eq)]
pub struct UsageError(pub String);

/// One flag: its spellings, its value's name (if it takes one), its group
/// (a heading in `--help`; empty for an ungrouped table) and its help.
pub struct Flag {
    pub long: &'static str,
    pub short: Option<char>,
    pub value: Option<&'static str>,
    pub group: &'static str,
    pub help: &'static str,
}

/// A flag with no short spelling.
pub const fn flag(
    long: &'static str,
    value: Option<&'static str>,
    group: &'static str,
    help: &'static str,
) -> Flag {
    Flag {
        long,
        short: None,
        value,
        group,
        help,
    }
}

/// The flag spelled `--long` in `table`.
pub fn find<'t>(table: &'t [Flag], long: &str) -> Option<&'t Flag> {
    table.iter().find(|f| f.long == long)
}

/// Appends `table` as `--help` shows it: a heading whenever the group
/// changes, then per flag `  -s, --long VALUE` and its help indented.
pub fn write_help(table: &[Flag], out: &mut String) {
    let mut group = "";
    for f in table {
        if f.group != group {
            group = f.group;
            out.push_str(&format!("\n{group}:\n"));
        }
        let short = f.short.map(|c| format!("-{c}, ")).unwrap_or_default();
        let value = f.value.map(|v| format!(" {v}")).unwrap_or_default();
        out.push_str(&format!("  {short}--{}{value}\n      {}\n", f.long, f.help));
    }
}
