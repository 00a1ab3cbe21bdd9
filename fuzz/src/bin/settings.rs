//! AFL++ entry point of the `settings` target; the harness is `convscope_fuzz::targets::settings` (see there).

fn main() {
    let mut run = convscope_fuzz::targets::settings::setup();
    afl::fuzz!(|data: &[u8]| run(data));
}
