use std::process::ExitCode;

fn main() -> ExitCode {
    ExitCode::from(icap_check::main(std::env::args_os().collect(), &|name| {
        std::env::var(name).ok()
    }))
}
