-- Runs busted inside the sluice executable, so the specs exercise the real
-- runtime (the way Neovim runs its specs with `nvim -l`):
--   ./sluice --tmpdb tests/run.lua [busted options] tests
-- busted ends a failing run with error() (no message); turn that into a
-- plain non-zero exit that still closes the Lua state (and the tmpdb).
--
-- The progress lines and summaries of the loads the specs run in this
-- process go nowhere (hundreds of them would bury busted's report);
-- progress_spec.lua checks them in child processes, as a user sees them.
require("sluice.progress").out = assert(io.open("/dev/null", "w"))
local ok, err = pcall(require "busted.runner", { standalone = false })
if not ok then
  if err ~= nil then error(err, 0) end
  os.exit(1, true)
end
