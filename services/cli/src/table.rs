//! Tables for people: borders only, fitted to the terminal, and never a word cut in two. An
//! identifier, an ARN or an error code split over two lines can be neither copied nor
//! grepped, so each column is at least as wide as its longest word; a column the caller
//! marks movable leaves the table for lines of its own below it when the terminal is too
//! narrow, and what still does not fit makes the table wider than the terminal rather than
//! cut a word.

use comfy_table::{ColumnConstraint, ContentArrangement, Table, Width, presets};

/// The width tables fit: `COLUMNS` (the shell's width when it exports it), 100 otherwise,
/// so that what a script or a test sees does not vary.
pub fn terminal_width() -> usize {
    // Unit tests compare tables with stored snapshots: the caller's shell must not change them.
    let columns = if cfg!(test) { None } else { std::env::var("COLUMNS").ok() };
    columns.and_then(|c| c.parse().ok()).unwrap_or(100)
}

/// A table's header, rows, and which columns may move below it.
pub struct Grid {
    header: Vec<String>,
    rows: Vec<Vec<String>>,
    /// Columns that leave the table when it does not fit, in the order they leave.
    movable: Vec<usize>,
    /// How a row is named on the lines of its moved columns: its first cell's first line
    /// after this prefix.
    label_prefix: String,
}

impl Grid {
    pub fn new(header: &[&str]) -> Self {
        Grid {
            header: header.iter().map(|h| h.to_string()).collect(),
            rows: Vec::new(),
            movable: Vec::new(),
            label_prefix: String::new(),
        }
    }

    /// `columns` may leave the table, in this order, for lines below it, each line naming
    /// its row by `prefix` and the row's first cell.
    pub fn movable(mut self, columns: &[usize], prefix: &str) -> Self {
        self.movable = columns.to_vec();
        self.label_prefix = prefix.to_string();
        self
    }

    pub fn row(&mut self, cells: Vec<String>) {
        self.rows.push(cells);
    }

    /// Rendered to fit [`terminal_width`].
    pub fn render(&self) -> String {
        self.render_at(terminal_width())
    }

    /// Rendered to fit `width` columns: the movable columns leave, one at a time, until it
    /// does, or none is left to move.
    pub fn render_at(&self, width: usize) -> String {
        let mut moved = 0;
        loop {
            let gone = &self.movable[..moved];
            let text = self.table(gone, width).to_string();
            let widest = text.lines().map(|l| l.chars().count()).max().unwrap_or(0);
            if widest <= width || moved == self.movable.len() {
                return self.with_moved(text, gone);
            }
            moved += 1;
        }
    }

    fn table(&self, gone: &[usize], width: usize) -> Table {
        let kept: Vec<usize> = (0..self.header.len()).filter(|c| !gone.contains(c)).collect();
        let mut t = Table::new();
        t.load_preset(presets::UTF8_BORDERS_ONLY)
            .set_content_arrangement(ContentArrangement::Dynamic)
            .set_width(u16::try_from(width).unwrap_or(u16::MAX))
            .set_header(kept.iter().map(|&c| self.header[c].as_str()));
        for row in &self.rows {
            t.add_row(kept.iter().map(|&c| row.get(c).map(String::as_str).unwrap_or_default()));
        }
        for (i, &c) in kept.iter().enumerate() {
            let cells = self.rows.iter().filter_map(|r| r.get(c)).chain([&self.header[c]]);
            let longest = cells.flat_map(|cell| cell.split_whitespace()).map(|w| w.chars().count()).max();
            if let (Some(column), Some(longest)) = (t.column_mut(i), longest) {
                // A constraint's width counts the column's padding too, one space a side.
                let (left, right) = (1, 1);
                column.set_padding((left, right));
                let floor = u16::try_from(longest).unwrap_or(u16::MAX).saturating_add(left + right);
                column.set_constraint(ColumnConstraint::LowerBoundary(Width::Fixed(floor)));
            }
        }
        t
    }

    /// `table` and, below it, each moved column's values: one line per row that has one.
    fn with_moved(&self, mut table: String, gone: &[usize]) -> String {
        let mut lines = Vec::new();
        for row in &self.rows {
            let label = row.first().and_then(|c| c.lines().next()).unwrap_or_default();
            for &c in gone {
                let value = row.get(c).map(|v| v.split_whitespace().collect::<Vec<_>>().join(" ")).unwrap_or_default();
                if !value.is_empty() && value != "-" {
                    lines.push(format!("{}{label} {}: {value}", self.label_prefix, self.header[c]));
                }
            }
        }
        if !lines.is_empty() {
            table.push_str("\n\n");
            table.push_str(&lines.join("\n"));
        }
        table
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ARN: &str = "arn:aws:rds:eu-west-1:111111111111:snapshot:snapferry-copy-orders-2026-11-27-09-00";
    const CODE: &str = "KMSKeyNotAccessibleFault";
    const MESSAGE: &str = "0f2b3c4d-5e6f-4a7b-8c9d-0e1f2a3b4c5d";

    fn grid() -> Grid {
        let mut g = Grid::new(&["message", "snapshot", "error", "note"]).movable(&[1, 2], "message ");
        g.row(vec![MESSAGE.into(), ARN.into(), format!("{CODE} (KMS:DisabledException)"), "key disabled".into()]);
        g.row(vec!["m-2".into(), "-".into(), "Throttling".into(), "retried".into()]);
        g
    }

    /// Every word of `values` appears whole on some line of `text`.
    fn whole(text: &str, values: &[&str]) {
        for v in values {
            assert!(text.lines().any(|l| l.contains(v)), "{v} cut in two:\n{text}");
        }
    }

    #[test]
    fn no_word_is_cut_and_columns_that_do_not_fit_move_below_the_table() {
        for width in [200, 120, 100, 80, 60, 40] {
            let text = grid().render_at(width);
            whole(&text, &[ARN, CODE, MESSAGE, "(KMS:DisabledException)"]);
            let widest = text.lines().map(|l| l.chars().count()).max().unwrap_or(0);
            // The table fits once the movable columns left; the moved lines are text.
            let table_width = text.split("\n\n").next().unwrap().lines().map(|l| l.chars().count()).max().unwrap();
            if width >= 80 {
                assert!(table_width <= width, "{width}: {table_width} wide:\n{text}");
            }
            assert!(widest >= table_width);
        }
        let wide = grid().render_at(200);
        assert!(!wide.contains("\n\n"), "everything fits in the table:\n{wide}");
        // At 80 the ARN leaves, first; the error still fits.
        let narrow = grid().render_at(80);
        assert!(narrow.contains(&format!("message {MESSAGE} snapshot: {ARN}")), "{narrow}");
        assert!(!narrow.contains("error: "), "{narrow}");
        assert!(!narrow.contains("message m-2 snapshot"), "a '-' says nothing:\n{narrow}");
        // At 60 the error leaves too.
        let narrower = grid().render_at(60);
        assert!(narrower.contains("message m-2 error: Throttling"), "{narrower}");
        assert!(narrower.contains(&format!("message {MESSAGE} error: {CODE} (KMS:DisabledException)")), "{narrower}");
    }
}
