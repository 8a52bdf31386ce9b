use std::process::ExitCode;

fn main() -> ExitCode {
    icap_check::run(std::env::args_os(), &|name| std::env::var(name).ok())
}
