-- A connection error never shows the password: not for a malformed target
-- (libpq's parse errors quote the token or the whole URI they stopped at),
-- not when part of the password lands in another field, not from the
-- sluice executable.  The error still says what is wrong.
local sluice = require "sluice"
local H = require "helper"

local MALFORMED_HINT = "in a postgres:// URI, percent-encode reserved characters of the user "
  .. "name and password (%40 for @, %2F for /, %25 for %); in a key=value string, put a value "
  .. "that holds spaces or quotes in single quotes, writing \\' for a quote"

-- Every string an error object shows: tostring() and each field.
local function texts(err)
  local out = { tostring(err) }
  if type(err) == "table" then
    for k, v in pairs(err) do out[#out + 1] = tostring(k) .. "=" .. tostring(v) end
  end
  return out
end

local function assert_hidden(err, secrets)
  for _, text in ipairs(texts(err)) do
    for _, s in ipairs(secrets) do
      assert.falsy(text:find(s, 1, true), ("%q shows %q"):format(text, s))
    end
  end
end

describe("a connection error", function()
  -- target, the password's forms (raw, percent-decoded, fragments), and
  -- the message (or, when it depends on the machine, a part of it)
  local cases = {
    {
      "postgres://u:S3cret%zz@127.0.0.1/db", { "S3cret%zz", "S3cret", "%zz" },
      message = 'could not connect to PostgreSQL: malformed connection target '
        .. '"postgres://u:***@127.0.0.1/db": invalid percent-encoded token: "***"',
    },
    {
      "postgres://u:Pw@[::1/db", { "Pw" },
      message = 'could not connect to PostgreSQL: malformed connection target "postgres://u:***@[::1/db": '
        .. 'end of string reached when looking for matching "]" in IPv6 host address in URI: "***"',
    },
    {
      "host=127.0.0.1 password='Abq9'Xyz7", { "Abq9", "Xyz7" },
      message = 'could not connect to PostgreSQL: malformed connection target "host=127.0.0.1 password=***": '
        .. 'missing "=" after "***" in connection info string',
    },
    {
      "host=127.0.0.1 password='Abq9 Xyz7", { "Abq9", "Xyz7" },
      message = 'could not connect to PostgreSQL: malformed connection target "host=127.0.0.1 password=***": '
        .. 'unterminated quoted string in connection info string',
    },
    {
      "host=127.0.0.1 password=Abq9 Xyz7 dbname=x", { "Abq9", "Xyz7" },
      message = 'could not connect to PostgreSQL: malformed connection target '
        .. '"host=127.0.0.1 password=*** dbname=x": missing "=" after "***" in connection info string',
    },
    {
      "host=/nonexistent password=Hunter2x bogus=1", { "Hunter2x" },
      message = 'could not connect to PostgreSQL: malformed connection target '
        .. '"host=/nonexistent password=***": invalid connection option "***"',
    },
    {
      "host=/nonexistent sslpassword=Ssl7pw9 x9", { "Ssl7pw9", "x9" },
      message = 'could not connect to PostgreSQL: malformed connection target '
        .. '"host=/nonexistent sslpassword=***": missing "=" after "***" in connection info string',
    },
    {
      "postgres://u@127.0.0.1/db?password=Qq9zz&foo=bar", { "Qq9zz" },
      message = 'could not connect to PostgreSQL: malformed connection target '
        .. '"postgres://u@127.0.0.1/db?password=***": invalid URI query parameter: "***"',
    },
    {
      "postgres://u@127.0.0.1/db?password=Qq9zz%zz", { "Qq9zz" },
      message = 'could not connect to PostgreSQL: malformed connection target '
        .. '"postgres://u@127.0.0.1/db?password=***": invalid percent-encoded token: "***"',
    },
    {
      "postgres://u:Hunter%zz2@127.0.0.1/db?sslmode=require", { "Hunter", "%zz2" },
      message = 'could not connect to PostgreSQL: malformed connection target '
        .. '"postgres://u:***@127.0.0.1/db?sslmode=require": invalid percent-encoded token: "***"',
    },
    -- parses, but a raw "/" cuts the password: "u:Zq" becomes host and
    -- port, the rest the database name
    {
      "postgres://u:Zq/wk7@127.0.0.1/db", { "Zq/wk7", "Zq", "wk7" },
      part = 'port=*** dbname=*** user=',
      part2 = 'invalid integer value "***" for connection option "port"',
    },
    -- parses; what is wrong is elsewhere, and still said
    {
      "postgres://u:Hunter2x@127.0.0.1:99999/db", { "Hunter2x" },
      message = 'could not connect to PostgreSQL (host=127.0.0.1 port=99999 dbname=db user=u): '
        .. 'invalid port number: "99999"',
    },
    {
      "postgres://u@127.0.0.1/db?password=H%75nter2y&sslmode=bogus", { "H%75nter2y", "Hunter2y" },
      message = 'could not connect to PostgreSQL (host=127.0.0.1 port=5432 dbname=db user=u): '
        .. 'invalid sslmode value: "bogus"',
    },
  }

  for _, c in ipairs(cases) do
    it("hides the password of " .. c[1], function()
      local ok, err = pcall(sluice.connect, c[1])
      assert.is_false(ok)
      assert.is_true(sluice.is_error(err), tostring(err))
      assert.are.equal("08001", err.sqlstate)
      assert_hidden(err, c[2])
      if c.message then
        assert.are.equal(c.message, err.message)
        if err.message:find("malformed", 1, true) then
          assert.are.equal(MALFORMED_HINT, err.hint)
        end
      else
        assert.truthy(err.message:find(c.part, 1, true), err.message)
        assert.truthy(err.message:find(c.part2, 1, true), err.message)
      end
    end)
  end

  it("hides a password the server would echo in a database name", function()
    -- no scheme: the whole target is a database name, which the server
    -- quotes in its answer
    local info = H.connect():info()
    local env = ("env -u DATABASE_URL -u PGDATABASE PGHOST=%s PGPORT=%s PGUSER=%s")
      :format(H.q(info.host), info.port, info.user)
    local code, _, err = H.sluice([[-e 'require"sluice".connect("u:S3cretQ@localhost/db")']], env)
    assert.are.equal(1, code)
    assert.falsy(err:find("S3cretQ", 1, true), err)
    assert.truthy(err:find('FATAL:  database "u:***@localhost/db" does not exist', 1, true), err)
    assert.truthy(err:find(' dbname=u:***@localhost/db ', 1, true), err)
  end)

  it("from the sluice executable, a malformed DATABASE_URL", function()
    local code, out, err = H.sluice([[-e 'require"sluice".connect()']],
      "DATABASE_URL=" .. H.q("postgres://u:S3cret%zz@127.0.0.1/db"))
    assert.are.equal(1, code)
    assert.are.equal("", out)
    assert.falsy(err:find("S3cret", 1, true), err)
    assert.truthy(err:find('malformed connection target "postgres://u:***@127.0.0.1/db": '
      .. 'invalid percent-encoded token: "***"', 1, true), err)
  end)

  it("from a failing benchmark command, which shows DATABASE_URL by name", function()
    local url = "postgres://u:Bench7pw@127.0.0.1:1/db"
    local script = ("local B = dofile(%q); B.sh('ls ' .. B.q(os.getenv('DATABASE_URL')))")
      :format(H.root .. "/bench/common.lua")
    local code, _, err = H.sluice("-e " .. H.q(script), "DATABASE_URL=" .. H.q(url))
    assert.are.equal(1, code)
    assert.falsy(err:find("Bench7pw", 1, true), err)
    -- the command, then ls's complaint about the file, which names it
    assert.truthy(err:find("): ls $DATABASE_URL\nls: ", 1, true), err)
    assert.truthy(err:find("$DATABASE_URL", err:find("\nls: ", 1, true), true), err)
  end)
end)
