-- Password authentication: PGPASSWORD and .pgpass work as with psql, and a
-- password never shows up in an error message.
local H = require "helper"

describe("password authentication", function()
  local db, info, hba

  setup(function()
    db = H.connect()
    info = db:info()
    hba = db:query_one("show hba_file").hba_file
    db:exec("DROP ROLE IF EXISTS sluice_pw; CREATE ROLE sluice_pw LOGIN PASSWORD 'Sekr1t-pw'")
    -- password auth for that role on the socket, trust for everyone else
    db:exec("COPY (VALUES ('local all sluice_pw scram-sha-256'), ('local all all trust')) TO "
            .. "'" .. hba .. "'")
    db:query("select pg_reload_conf()")
    db:exec("select pg_sleep(0.2)")
  end)

  teardown(function()
    db:exec("COPY (VALUES ('local all all trust')) TO '" .. hba .. "'")
    db:query("select pg_reload_conf()")
    db:exec("DROP ROLE sluice_pw")
    db:close()
  end)

  local function env(extra)
    return ("env -u DATABASE_URL -u PGPASSWORD PGHOST=%s PGPORT=%s PGDATABASE=%s PGUSER=sluice_pw %s")
      :format(H.q(info.host), info.port, info.dbname, extra or "")
  end
  local who = [[-e 'print(require"sluice".connect():query_one("select current_user as u").u)']]

  it("uses PGPASSWORD", function()
    local code, out, err = H.sluice(who, env("PGPASSWORD=Sekr1t-pw"))
    assert.are.equal(0, code, err)
    assert.are.equal("sluice_pw\n", out)
  end)

  it("uses a .pgpass file", function()
    local path = os.tmpname()
    local f = assert(io.open(path, "w"))
    f:write(("*:*:*:sluice_pw:Sekr1t-pw\n"))
    f:close()
    os.execute("chmod 600 " .. path)
    local code, out, err = H.sluice(who, env("PGPASSFILE=" .. path))
    os.remove(path)
    assert.are.equal(0, code, err)
    assert.are.equal("sluice_pw\n", out)
  end)

  it("fails with a clear message that does not contain the password", function()
    local code, _, err = H.sluice(who, env("PGPASSWORD=wrong-Pa55"))
    assert.are.equal(1, code)
    assert.truthy(err:find("could not connect to PostgreSQL (host=" .. info.host, 1, true), err)
    assert.truthy(err:find('password authentication failed for user "sluice_pw"', 1, true), err)
    assert.falsy(err:find("wrong-Pa55", 1, true), err)
    -- a password inside the target itself is not echoed either
    code, _, err = H.sluice(([[-e 'require"sluice".connect("postgresql://sluice_pw:Other-Pa55@/%s?host=%s")']])
      :format(info.dbname, info.host))
    assert.are.equal(1, code)
    assert.truthy(err:find("password authentication failed", 1, true), err)
    assert.falsy(err:find("Other-Pa55", 1, true), err)
  end)
end)
