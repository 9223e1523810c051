// start s3rver plain HTTP, keep running; print port
import { startS3rver } from '/work/main/dist/src/vault/_test-object-stores.js'
import { S3Client, CreateBucketCommand } from '@aws-sdk/client-s3'
const s = await startS3rver()
const c = new S3Client({ endpoint: s.endpoint, region: 'us-east-1', forcePathStyle: true, credentials: { accessKeyId: 'S3RVER', secretAccessKey: 'S3RVER' } })
for (const b of ['cairn', 'warm']) await c.send(new CreateBucketCommand({ Bucket: b }))
console.log(s.port, s.pid)
setInterval(() => {}, 1e6)
