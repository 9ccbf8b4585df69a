--- A private, throwaway PostgreSQL server.
--
-- sluice.tmpdb(opts) runs initdb in a new temporary directory and starts a
-- server listening only on a unix socket in that directory (no TCP port).
-- The returned object has :conninfo(), :uri(), :dir() and :stop(); the
-- server is stopped and its directory removed when the object is collected,
-- when the Lua state closes, or when the process exits (also on error and
-- Ctrl-C).  When run as root, the server runs as the postgres user.
--
-- Server binaries are looked for in opts.bindir, then $PG_BINDIR, then
-- `pg_config --bindir`, then the newest /usr/lib/postgresql/<N>/bin, then
-- $PATH.
--
-- The server runs with PostgreSQL's default (durable) settings, so load
-- timings mean what they would on a real server; opts.fast = true turns
-- off fsync, synchronous_commit and full_page_writes instead (the data is
-- thrown away anyway).  opts.settings is a
-- list of extra "name=value" server settings.
--
-- t:restart{ mode = "immediate", pause = seconds, timeout = seconds }
-- stops the server and starts it again in place (the same directory,
-- socket, data and settings: conninfo() and uri() stay valid), for tests
-- of what a client does when its server goes away.  mode "immediate"
-- (the default) is what `pg_ctl stop -m immediate` does - no shutdown
-- checkpoint, the start runs crash recovery - and "fast" a clean
-- shutdown; pause: seconds the server stays down (default 0); timeout:
-- seconds to wait for it to accept connections again (default 30).
local core = require "sluice.core"

local M = {}

function M.start(opts)
  if opts ~= nil and type(opts) ~= "table" then
    error("sluice.tmpdb: opts must be a table", 2)
  end
  return core.tmpdb_start(opts)
end

return M
