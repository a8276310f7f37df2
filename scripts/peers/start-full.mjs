// Full local network: PLC + PDS + Bsky AppView + Bsync + Ozone (Postgres + Redis on loopback)
// Copied from the team's shared recipe (../shared/peers/); see scripts/peers/README.md.
import { TestNetwork } from '@atproto/dev-env'
const t0 = Date.now()
const net = await TestNetwork.create({
  dbPostgresSchema: 'dev',
  plc: { port: 2582 },
  pds: { port: 2583, hostname: 'localhost' },
  bsky: { port: 2584, publicUrl: 'http://localhost:2584' },
  ozone: { port: 2587, chatUrl: 'http://127.0.0.1:1', chatDid: 'did:example:chat' },
})
console.log(`PLC ${net.plc.url} PDS ${net.pds.url} AppView ${net.bsky.url} Ozone ${net.ozone.url}`)
const agent = net.pds.getAgent()
const r = await agent.createAccount({ email: 'alice@example.com', handle: 'alice.test', password: 'hunter2' })
await net.processAll?.()
console.log(`account did=${r.data.did}`)
console.log(`READY ${Date.now() - t0} ms rss=${Math.round(process.memoryUsage().rss/1e6)}MB`)
// keep the appview indexing the PDS firehose
const stop = async () => { await net.close(); process.exit(0) }
process.on('SIGTERM', stop); process.on('SIGINT', stop)
