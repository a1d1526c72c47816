'use strict';
// Node-RED settings of the ingest benchmark's Node-RED peer (bench/ingest/run.py --compare): headless
// (no editor, no HTTP server), the flow file given on the command line (flow.json beside this file),
// the userDir a temporary folder per run, the function node's `pg` the one package-lock.json pins.
module.exports = {
    httpAdminRoot: false,
    httpNodeRoot: false,
    credentialSecret: false,
    flowFilePretty: true,
    // `require` from here resolves in bench/ingest/peers/node_modules
    functionGlobalContext: { pg: require('pg') },
    functionExternalModules: false,
    externalModules: { palette: { allowInstall: false } },
    contextStorage: { default: { module: 'memory' } },
    editorTheme: { projects: { enabled: false } },
    mqttReconnectTime: 1000, // as the hand-written peer and Yiju's first back-off
    logging: { console: { level: 'info', metrics: false, audit: false } },
    diagnostics: { enabled: false },
    runtimeState: { enabled: false },
    telemetry: { enabled: false },
};
