//! AFL++ entry point of the `checkpoint` target; the harness is `convscope_fuzz::targets::checkpoint` (see there).

fn main() {
    let mut run = convscope_fuzz::targets::checkpoint::setup();
    afl::fuzz!(|data: &[u8]| run(data));
}
