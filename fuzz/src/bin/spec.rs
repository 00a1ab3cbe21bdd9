//! AFL++ entry point of the `spec` target; the harness is `convscope_fuzz::targets::spec` (see there).

fn main() {
    let mut run = convscope_fuzz::targets::spec::setup();
    afl::fuzz!(|data: &[u8]| run(data));
}
