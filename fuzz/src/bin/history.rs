//! AFL++ entry point of the `history` target; the harness is `convscope_fuzz::targets::history` (see there).

fn main() {
    let mut run = convscope_fuzz::targets::history::setup();
    afl::fuzz!(|data: &[u8]| run(data));
}
