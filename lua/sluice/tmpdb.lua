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
--
-- opts.citus = { workers = N } starts a Citus cluster instead: a
-- coordinator and N workers, each its own throwaway server with
-- shared_preload_libraries = citus (and max_prepared_transactions, which
-- Citus's two-phase commit across nodes needs), the extension created on
-- each, the workers registered on the coordinator (citus_add_node, so
-- their metadata is synced and any node accepts COPY into distributed
-- tables).  Nodes reach each other over their unix sockets: a node's
-- name is its socket directory.  The object is the coordinator's (its
-- conninfo(), uri(), dir(), restart()) with nodes(): the conninfo of
-- every node, the coordinator first, and workers: the workers' own
-- objects; stop() and the end of the process stop them all.  Citus is
-- built from the project's vendored source by `make deps-citus`.
local core = require "sluice.core"

local M = {}

local Cluster = {}
Cluster.__index = Cluster
for _, m in ipairs({ "conninfo", "uri", "dir", "restart" }) do
  Cluster[m] = function(self, ...) return self.coordinator[m](self.coordinator, ...) end
end
function Cluster:stop()
  for _, w in ipairs(self.workers) do w:stop() end
  return self.coordinator:stop()
end
function Cluster:nodes()
  local out = { self.coordinator:conninfo() }
  for i, w in ipairs(self.workers) do out[i + 1] = w:conninfo() end
  return out
end

local function citus_missing()
  local f = io.popen("pg_config --sharedir 2>/dev/null")
  local dir = f and f:read("*l")
  if f then f:close() end
  if not dir then return false end
  local c = io.open(dir .. "/extension/citus.control")
  if c then c:close() return false end
  return true, dir .. "/extension/citus.control"
end

local function start_citus(opts, citus, level)
  local n = citus.workers or 2
  if type(n) ~= "number" or n < 0 or n % 1 ~= 0 then
    error("sluice.tmpdb: citus.workers must be a whole number (0 or more)", level)
  end
  local missing, where = citus_missing()
  if missing then
    error(("sluice.tmpdb: Citus is not installed in this PostgreSQL (no %s): "
           .. "run `make deps-citus` in the sluice checkout"):format(where), level)
  end
  local node_opts = {}
  for k, v in pairs(opts) do if k ~= "citus" then node_opts[k] = v end end
  local settings = { "shared_preload_libraries=citus", "max_prepared_transactions=100" }
  for _, kv in ipairs(opts.settings or {}) do settings[#settings + 1] = kv end
  node_opts.settings = settings
  local self = setmetatable({ workers = {} }, Cluster)
  self.coordinator = core.tmpdb_start(node_opts)
  for i = 1, n do self.workers[i] = core.tmpdb_start(node_opts) end
  local sluice = require "sluice"
  local function port_of(t) return tonumber(t:conninfo():match("port=(%d+)")) or 5432 end
  local ok, err = pcall(function()
    for _, t in ipairs({ self.coordinator, unpack(self.workers) }) do
      local db = sluice.connect(t:conninfo())
      db:exec("set client_min_messages = warning")
      db:exec("create extension citus")
      db:close()
    end
    local db = sluice.connect(self.coordinator:conninfo())
    db:exec("set client_min_messages = warning")
    db:query("select citus_set_coordinator_host($1, $2)", self.coordinator:dir(),
             port_of(self.coordinator))
    for _, w in ipairs(self.workers) do
      db:query("select citus_add_node($1, $2)", w:dir(), port_of(w))
    end
    db:close()
  end)
  if not ok then
    self:stop()
    error("sluice.tmpdb: starting the Citus cluster: " .. tostring(err), level)
  end
  return self
end

function M.start(opts)
  if opts ~= nil and type(opts) ~= "table" then
    error("sluice.tmpdb: opts must be a table", 2)
  end
  if opts and opts.citus ~= nil then
    if type(opts.citus) ~= "table" then
      error("sluice.tmpdb: citus must be a table ({ workers = N })", 2)
    end
    return start_citus(opts, opts.citus, 3)
  end
  return core.tmpdb_start(opts)
end

return M
