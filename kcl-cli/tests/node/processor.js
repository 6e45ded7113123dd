// A MultiLang processor on the official npm aws-kcl library (which ships no
// samples): appends "<shard> <sequence> <data>" per record to the file
// KCL_NODE_OUT, checkpoints after every batch, at shard end and on a
// shutdown request.
'use strict';

const fs = require('fs');
const kcl = require('aws-kcl');

const out = process.env.KCL_NODE_OUT;
let shard = 'unknown';

const processor = {
  initialize: function (input, done) {
    shard = input.shardId;
    done();
  },
  processRecords: function (input, done) {
    let text = '';
    let last = null;
    for (const r of input.records) {
      const data = Buffer.from(r.data, 'base64').toString();
      text += shard + ' ' + r.sequenceNumber + ' ' + data + '\n';
      last = r.sequenceNumber;
    }
    if (out && text) {
      fs.appendFileSync(out, text);
    }
    if (last === null) {
      done();
      return;
    }
    input.checkpointer.checkpoint(last, function (err) {
      if (err) {
        process.stderr.write('checkpoint failed: ' + err + '\n');
      }
      done();
    });
  },
  leaseLost: function (input, done) {
    done();
  },
  shardEnded: function (input, done) {
    input.checkpointer.checkpoint(function (err) {
      if (err) {
        process.stderr.write('shard end checkpoint failed: ' + err + '\n');
      }
      done();
    });
  },
  shutdownRequested: function (input, done) {
    input.checkpointer.checkpoint(function (err) {
      done();
    });
  },
};

kcl(processor).run();
