//! AFL++ entry point of the `idx` target; the harness is `convscope_fuzz::targets::idx` (see there).

fn main() {
    let mut run = convscope_fuzz::targets::idx::setup();
    afl::fuzz!(|data: &[u8]| run(data));
}
