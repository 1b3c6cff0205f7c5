//! A Lua script call that works on whichever node serves its keys. It is sent as `EVALSHA`; a
//! node without the script (`NOSCRIPT`: a Redis that restarted, or in cluster mode a replica just
//! promoted by a failover) gets the script's text with `EVAL`, routed like `EVALSHA` by its
//! first key, which runs it and caches it there (redis-rs's own fallback, `SCRIPT LOAD` then
//! `EVALSHA`, loads it on the masters its slot map knows, which right after a failover may not
//! include the new one).
//!
//! In cluster mode each script starts with the shebang `#!lua` (Redis 7+): a script that
//! declares itself so is a write command to Redis (it has no `no-writes` flag), so a replica
//! redirects it to its master (MOVED) even on a connection in READONLY mode, which redis-rs
//! puts every cluster connection in. Without it a master demoted by a failover runs the script
//! itself and fails on its first write (`READONLY You can't write against a read only replica`,
//! which redis-rs does not retry), and since no MOVED ever comes, redis-rs keeps sending every
//! script there: the e2e failover test saw every request answered 503 after the switch.
//! Standalone keeps the scripts as they are (Redis 6 included).

use deadpool_redis::redis::{
    self, ErrorKind, FromRedisValue, RedisResult, ServerErrorKind, ToRedisArgs,
};

use couponrush_config::RedisMode;

use crate::connection::RedisConnection;

/// A script: its text and its SHA1.
#[derive(Debug)]
pub(crate) struct Lua {
    text: String,
    hash: String,
}

impl Lua {
    /// `text`, with the shebang `#!lua` in front for a cluster (see above).
    pub(crate) fn new(text: &str, mode: RedisMode) -> Self {
        let text = match mode {
            RedisMode::Standalone => text.to_owned(),
            RedisMode::Cluster => format!("#!lua\n{text}"),
        };
        Self {
            hash: redis::Script::new(&text).get_hash().to_owned(),
            text,
        }
    }

    pub(crate) fn text(&self) -> &str {
        &self.text
    }

    pub(crate) fn hash(&self) -> &str {
        &self.hash
    }

    /// A call without keys or arguments yet.
    pub(crate) fn prepare_invoke(&self) -> LuaCall<'_> {
        LuaCall {
            lua: self,
            keys: Vec::new(),
            args: Vec::new(),
        }
    }

    /// A call with its first key.
    pub(crate) fn key<T: ToRedisArgs>(&self, key: T) -> LuaCall<'_> {
        let mut call = self.prepare_invoke();
        call.key(key);
        call
    }
}

/// One call of a [`Lua`] script: its KEYS and ARGV.
#[derive(Debug)]
pub(crate) struct LuaCall<'a> {
    lua: &'a Lua,
    keys: Vec<Vec<u8>>,
    args: Vec<Vec<u8>>,
}

impl LuaCall<'_> {
    pub(crate) fn key<T: ToRedisArgs>(&mut self, key: T) -> &mut Self {
        self.keys.extend(key.to_redis_args());
        self
    }

    pub(crate) fn arg<T: ToRedisArgs>(&mut self, arg: T) -> &mut Self {
        self.args.extend(arg.to_redis_args());
        self
    }

    /// `EVALSHA`, or `EVAL` with the text where the node does not have the script.
    pub(crate) async fn invoke_async<T: FromRedisValue>(
        &self,
        conn: &mut RedisConnection,
    ) -> RedisResult<T> {
        match self
            .command("EVALSHA", self.lua.hash())
            .query_async(conn)
            .await
        {
            Err(error) if error.kind() == ErrorKind::Server(ServerErrorKind::NoScript) => {
                self.command("EVAL", self.lua.text())
                    .query_async(conn)
                    .await
            }
            other => other,
        }
    }

    fn command(&self, name: &str, script: &str) -> redis::Cmd {
        let mut cmd = redis::cmd(name);
        cmd.arg(script)
            .arg(self.keys.len())
            .arg(&self.keys)
            .arg(&self.args);
        cmd
    }
}
