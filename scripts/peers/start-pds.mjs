// Start a real @atproto/pds plus a real @did-plc/server (in-memory DB) on loopback, no internet.
// Copied from the team's shared recipe (../shared/peers/); see scripts/peers/README.md.
import { TestNetworkNoAppView } from '@atproto/dev-env'
const PLC_PORT = Number(process.env.PLC_PORT || 2582)
const PDS_PORT = Number(process.env.PDS_PORT || 2583)
const t0 = Date.now()
const net = await TestNetworkNoAppView.create({
  plc: { port: PLC_PORT },
  pds: {
    port: PDS_PORT,
    hostname: 'localhost',
    // keep every upstream on loopback (defaults are *.invalid hosts -> DNS lookups)
    bskyAppViewUrl: process.env.APPVIEW_URL || 'http://127.0.0.1:1',
    modServiceUrl: 'http://127.0.0.1:1',
  },
})
console.log(`PLC http://localhost:${net.plc.port}`)
console.log(`PDS http://localhost:${net.pds.port}`)
console.log(`started in ${Date.now() - t0} ms`)
// create a test account
const agent = net.pds.getAgent()
const r = await agent.createAccount({ email: 'alice@example.com', handle: 'alice.test', password: 'hunter2' })
console.log(`account did=${r.data.did} handle=${r.data.handle} password=hunter2`)
console.log(`READY ${Date.now() - t0} ms rss=${Math.round(process.memoryUsage().rss/1e6)}MB`)
const stop = async () => { await net.close(); process.exit(0) }
process.on('SIGTERM', stop); process.on('SIGINT', stop)
