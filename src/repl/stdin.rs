//! The stdin thread: reads lines with a prompt and line editing when stdin is a terminal,
//! plain lines when it is a pipe (scripts, `docker attach`), and hands each to the REPL task.

use super::log_sink;

/// A line typed, and where to say that it was handled (true: stop reading).
pub(super) type Line = (String, tokio::sync::oneshot::Sender<bool>);

/// Reads stdin on a dedicated thread and hands each line over, waiting until it was handled
/// before showing the next prompt. Ends at end of input (the channel closes).
pub(super) fn spawn_reader(tx: tokio::sync::mpsc::Sender<Line>) -> std::io::Result<()> {
    use std::io::IsTerminal;
    let terminal = std::io::stdin().is_terminal() && std::io::stdout().is_terminal();
    std::thread::Builder::new()
        .name("stdin".into())
        .spawn(move || {
            let send = |line: String| -> bool {
                let (done, handled) = tokio::sync::oneshot::channel();
                if tx.blocking_send((line, done)).is_err() {
                    return false;
                }
                // true means quit; a dropped sender means the node is gone.
                !handled.blocking_recv().unwrap_or(true)
            };
            if terminal {
                let Ok(mut editor) = rustyline::DefaultEditor::new() else {
                    return;
                };
                if let Ok(mut printer) = editor.create_external_printer() {
                    log_sink::set_printer(Box::new(move |msg| {
                        use rustyline::ExternalPrinter as _;
                        let _ = printer.print(msg);
                    }));
                }
                loop {
                    match editor.readline("gossipchain> ") {
                        Ok(line) => {
                            if !line.trim().is_empty() {
                                let _ = editor.add_history_entry(line.as_str());
                            }
                            if !send(line) {
                                return;
                            }
                        }
                        // Ctrl-C clears the line, as in a shell; Ctrl-D ends the input.
                        Err(rustyline::error::ReadlineError::Interrupted) => continue,
                        Err(_) => return,
                    }
                }
            } else {
                use std::io::BufRead;
                for line in std::io::stdin().lock().lines() {
                    let Ok(line) = line else { return };
                    if !send(line) {
                        return;
                    }
                }
            }
        })
        .map(|_| ())
}
